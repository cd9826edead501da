// An app's Git source (issue 17): connect GitHub, test a repository, follow a document on a
// branch, and see each sync's change report; sync now, auto-publish, stop following.
import { useEffect, useState } from "preact/hooks";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";

type Source = Schemas["SourceView"];
type Report = Schemas["SyncReport"];

/** What the callback's `?git=` says, in words. */
const RETURNED: Record<string, string> = {
  connected: "GitHub is connected.",
  denied: "GitHub was not connected: the consent was declined.",
  expired: "That GitHub sign-in had expired or was used already; connect again.",
  refused: "GitHub refused the sign-in code; connect again.",
  unavailable: "GitHub could not be reached; try again in a moment.",
  wrong_account: "That GitHub consent was started by another FlowCP account; connect from your own.",
  signed_out: "Sign in, then connect GitHub again.",
};

const short = (sha?: string | null) => (sha ? sha.slice(0, 7) : "");

export function GitSource({ ws, appId, onSynced }: { ws: string; appId: string; onSynced: () => Promise<void> }) {
  const [source, setSource] = useState<Source | null | undefined>(undefined);
  const [connections, setConnections] = useState<Schemas["GitConnection"][]>([]);
  const [said, setSaid] = useState(() => RETURNED[new URLSearchParams(window.location.search).get("git") ?? ""] ?? "");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const path = { ws, app: appId };

  const load = async () => {
    const [s, c] = await Promise.all([
      api.GET("/api/v1/workspaces/{ws}/apps/{app}/source", { params: { path } }),
      api.GET("/api/v1/workspaces/{ws}/git/connections", { params: { path: { ws } } }),
    ]);
    setSource(s.data ?? null);
    setConnections(c.data?.items ?? []);
  };
  useEffect(() => { void load(); }, [ws, appId]);

  const connect = async () => {
    setError("");
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/git/connections", {
      params: { path: { ws } },
      body: { provider: "github", return_to_app: appId },
    });
    if (!data) return setError(errorMessage(err, response.status));
    window.location.assign(data.authorize_url);
  };
  const run = async (what: string, action: () => Promise<string | void>) => {
    setBusy(what);
    setError("");
    setSaid("");
    try {
      const message = await action();
      if (message) setSaid(message);
    } finally {
      setBusy("");
    }
  };
  const syncNow = () => run("Syncing…", async () => {
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/apps/{app}/source/sync", { params: { path } });
    if (!data) return setError(errorMessage(err, response.status));
    await Promise.all([load(), onSynced()]);
    return data.message;
  });
  const setAuto = (on: boolean) => run("Saving…", async () => {
    const { data, error: err, response } = await api.PATCH("/api/v1/workspaces/{ws}/apps/{app}/source", { params: { path }, body: { auto_publish: on } });
    if (!data) return setError(errorMessage(err, response.status));
    setSource(data);
    return on ? "Auto-publish is on." : "Auto-publish is off.";
  });
  const stop = () => run("Stopping…", async () => {
    if (!confirm("Stop following the document in Git? The app keeps its tools and imports.")) return;
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/apps/{app}/source", { params: { path } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    setSecret(null);
    await load();
    return "The app no longer follows Git.";
  });

  if (source === undefined) return null;
  const active = connections.filter((c) => c.status === "active");
  return (
    <div class="card" aria-label="Git source">
      <h2>Follow a document in Git</h2>
      {said && <p role="status">{said}</p>}
      {busy && <p aria-live="polite" aria-busy="true">{busy}</p>}
      <ErrorLine>{error}</ErrorLine>
      {connections.filter((c) => c.status === "broken").map((c) => (
        <ErrorLine key={c.id}>{`GitHub (${c.account ?? "unknown account"}): ${c.status_message ?? "broken"}`}</ErrorLine>
      ))}
      {source ? (
        <>
          <p>
            Follows <code>{source.repo}</code> branch <code>{source.branch}</code>, file <code>{source.path}</code>
            {" · "}<strong>{source.status}</strong>{source.last_sha ? ` at ${short(source.last_sha)}` : ""}
            {source.webhook_created ? " · pushes arrive by webhook" : " · checked every 5 minutes"}
          </p>
          {source.message && <p class="muted">{source.message}</p>}
          {secret && (
            <p role="note">
              FlowCP could not add the webhook itself. Add one at the repository with the URL <code>{source.webhook_url}</code>, content
              type JSON, the push event and this secret (shown once): <code>{secret}</code>
            </p>
          )}
          {source.last_sync && <SyncSummary report={source.last_sync} />}
          <p class="inline">
            <label><input type="checkbox" checked={source.auto_publish} onChange={(e) => void setAuto((e.currentTarget as HTMLInputElement).checked)} /> Auto-publish servers on the air when verification passes</label>
          </p>
          <p class="inline">
            <button type="button" disabled={!!busy} onClick={() => void syncNow()}>Sync now</button>
            <button type="button" class="secondary" disabled={!!busy} onClick={() => void stop()}>Stop following</button>
          </p>
        </>
      ) : active.length === 0 ? (
        <>
          <p class="muted">Keep this app in step with its OpenAPI document in a GitHub repository: pushes re-import it, keeping your curation.</p>
          <button type="button" onClick={() => void connect()}>Connect GitHub</button>
        </>
      ) : (
        <Follow path={path} connections={active} onFollowed={async (set) => {
          setSecret(set.webhook_secret ?? null);
          setSaid(set.sync.message);
          await Promise.all([load(), onSynced()]);
        }} onConnect={() => void connect()} />
      )}
    </div>
  );
}

function Follow({ path, connections, onFollowed, onConnect }: {
  path: { ws: string; app: string };
  connections: Schemas["GitConnection"][];
  onFollowed: (s: Schemas["SourceSet"]) => Promise<void>;
  onConnect: () => void;
}) {
  const [conn, setConn] = useState(connections[0].id);
  const [repo, setRepo] = useState("");
  const [branch, setBranch] = useState("main");
  const [file, setFile] = useState("openapi.yaml");
  const [auto, setAuto] = useState(false);
  const [test, setTest] = useState<Schemas["TestResult"] | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  const check = async () => {
    setError("");
    setBusy("Checking…");
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/git/test", {
      params: { path: { ws: path.ws } },
      body: { connection_id: conn, repo, branch, path: file },
    });
    setBusy("");
    if (!data) return setError(errorMessage(err, response.status));
    setTest(data);
  };
  const follow = async (e: Event) => {
    e.preventDefault();
    setError("");
    setBusy("Following and syncing…");
    const { data, error: err, response } = await api.PUT("/api/v1/workspaces/{ws}/apps/{app}/source", {
      params: { path },
      body: { connection_id: conn, repo, branch, path: file, auto_publish: auto },
    });
    setBusy("");
    if (!data) return setError(errorMessage(err, response.status));
    await onFollowed(data);
  };
  return (
    <form onSubmit={follow} aria-label="Follow a document">
      {connections.length > 1 ? (
        <p class="field">
          <label for="f-git-conn">GitHub connection</label>
          <select id="f-git-conn" value={conn} onChange={(e) => setConn((e.currentTarget as HTMLSelectElement).value)}>
            {connections.map((c) => <option key={c.id} value={c.id}>{c.account ?? c.id}</option>)}
          </select>
        </p>
      ) : (
        <p class="muted">Connected to GitHub as <strong>{connections[0].account}</strong>. <button type="button" class="link" onClick={onConnect}>Connect another account</button></p>
      )}
      <div class="inline">
        <Field label="Repository" name="git_repo" value={repo} onInput={setRepo} hint="owner/name" />
        <Field label="Branch" name="git_branch" value={branch} onInput={setBranch} />
        <Field label="Document path" name="git_path" value={file} onInput={setFile} hint="JSON or YAML; $refs to other files of the repository are followed." />
      </div>
      <p><label><input type="checkbox" checked={auto} onChange={(e) => setAuto((e.currentTarget as HTMLInputElement).checked)} /> Auto-publish servers on the air when verification passes</label></p>
      <p class="inline">
        <button type="button" class="secondary" disabled={!!busy || !repo} onClick={() => void check()}>Test</button>
        <button type="submit" disabled={!!busy || !repo}>Follow</button>
      </p>
      {busy && <p aria-live="polite" aria-busy="true">{busy}</p>}
      <ErrorLine>{error}</ErrorLine>
      {test && (
        <div role="region" aria-label="Test result">
          <p>{test.branches.length} branches{test.branch_found === false ? `; no branch ${branch}` : ""}.</p>
          {test.file && (test.file.ok
            ? <p>The document imports: <strong>{test.file.title}</strong> {test.file.version ? `(${test.file.version})` : ""}, {test.file.tool_count} tools, {test.file.warning_count} warnings.</p>
            : <ErrorLine>{test.file.error ?? "The document cannot be imported."}</ErrorLine>)}
        </div>
      )}
    </form>
  );
}

/** The last sync: its commit, the tools it changed and what happened to each server. */
function SyncSummary({ report }: { report: Report }) {
  const c = report.commit;
  const changes = [...report.added.map((n) => `+${n}`), ...report.removed.map((n) => `−${n}`), ...report.changed.map((n) => `~${n}`)];
  return (
    <div aria-label="Last sync">
      <p>
        Last sync ({report.trigger}, {new Date(report.at).toISOString().replace("T", " ").slice(0, 16)} UTC): <strong>{report.outcome}</strong>
        {c && <> · <code>{short(c.sha)}</code> by {c.author}: {c.message}</>}
      </p>
      {report.outcome === "imported" && (
        <p>
          <span class="added">+{report.added.length}</span> <span class="removed">−{report.removed.length}</span> <span class="changed">~{report.changed.length}</span>
          {changes.length > 0 && <small class="muted"> {changes.slice(0, 20).join(", ")}{changes.length > 20 ? "…" : ""}</small>}
        </p>
      )}
      {report.servers.length > 0 && (
        <ul class="list" aria-label="Servers after the sync">
          {report.servers.map((s) => (
            <li key={s.server_id}>
              <a href={`/servers/${s.server_id}`}>{s.name}</a>: {s.verification}
              {s.published_version ? `, published as version ${s.published_version}` : ""}{s.detail ? ` — ${s.detail}` : ""}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
