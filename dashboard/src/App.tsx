// The dashboard shell: the header (workspace switcher, sign out) and the routes.
import { useEffect } from "preact/hooks";
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { Legal } from "./screens/Legal";
import { Account } from "./screens/Account";
import { Activity } from "./screens/Activity";
import { AppPage } from "./screens/AppPage";
import { Members } from "./screens/Members";
import { Secrets } from "./screens/Secrets";
import { ServerPage } from "./screens/ServerPage";
import { Home } from "./screens/Home";
import { SignIn } from "./screens/SignIn";
import { SignUp } from "./screens/SignUp";
import { continueTo, safeNext } from "./next";
import { loadMe, me, signOut } from "./session";
import { chooseWorkspace, workspaceId } from "./workspace";

const PUBLIC = ["/sign-in", "/sign-up", "/privacy", "/terms"];

function Header() {
  const { route } = useLocation();
  const user = me.value;
  return (
    <header class="top">
      <span class="links">
        <a href="/" class="brand">FlowCP</a>
        {user && <a href="/">Apps</a>}
        {user && <a href="/activity">Activity</a>}
        {user && <a href="/secrets">Secrets</a>}
        {user && <a href="/members">Members</a>}
      </span>
      {user && (
        <nav aria-label="Account">
          <label for="ws-switch" class="sr-only">Workspace</label>
          <select id="ws-switch" value={workspaceId.value ?? ""} onChange={(e) => chooseWorkspace((e.currentTarget as HTMLSelectElement).value)}>
            {user.workspaces.map((w) => (
              <option key={w.id} value={w.id}>{w.name}</option>
            ))}
          </select>
          <a href="/account" class="who">{user.user.display_name}</a>
          <button type="button" class="link" onClick={async () => { await signOut(); route("/sign-in"); }}>Sign out</button>
        </nav>
      )}
    </header>
  );
}

/** Signed-out visitors of a private page go to sign in; signed-in ones of sign-in/up go home. */
function Guard() {
  const { path, route } = useLocation();
  useEffect(() => {
    if (me.value === undefined) return;
    const open = PUBLIC.includes(path);
    if (!me.value && !open) route("/sign-in", true);
    if (me.value && (path === "/sign-in" || path === "/sign-up")) {
      // Signed in already, and an agent's sign-in sent the browser here: straight back to it.
      const next = safeNext();
      if (next) continueTo(next);
      else route("/", true);
    }
  }, [path, me.value]);
  return null;
}

export function App() {
  useEffect(() => {
    void loadMe();
  }, []);
  return (
    <LocationProvider>
      <Header />
      <Guard />
      {me.value && !me.value.user.email_verified && (
        <p class="banner" role="note">
          Verify <strong>{me.value.user.email}</strong> with the emailed link to publish, create access keys and join workspaces. <a href="/account">Send a new link</a>
        </p>
      )}
      <main>
        {me.value === undefined ? (
          <p aria-busy="true">Loading…</p>
        ) : (
          <Router>
            <Route path="/" component={Home} />
            <Route path="/apps/:id" component={AppPage} />
            <Route path="/servers/:id" component={ServerPage} />
            <Route path="/activity" component={Activity} />
            <Route path="/account" component={Account} />
            <Route path="/secrets" component={Secrets} />
            <Route path="/members" component={Members} />
            <Route path="/sign-in" component={SignIn} />
            <Route path="/sign-up" component={SignUp} />
            <Route path="/privacy" component={() => <Legal page="privacy" />} />
            <Route path="/terms" component={() => <Legal page="terms" />} />
            <Route default component={NotFound} />
          </Router>
        )}
      </main>
    </LocationProvider>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p><a href="/">Back to your workspace</a></p>
    </section>
  );
}
