// The pages emailed links open: /verify-email, /confirm-email, /reset-password and
// /invitations/accept. The
// token travels in the URL fragment (never sent to a server, never in a Referer); the page
// takes it, clears it from the address bar and posts it. Verifying an address and accepting an
// invitation need the session of the right account, so those pages sign in first if needed.

type Page = "/verify-email" | "/confirm-email" | "/reset-password" | "/invitations/accept";

interface Answer {
  status: number;
  body: Record<string, unknown> | null;
}

let csrf: string | null = null;

async function api(method: string, path: string, json?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (json !== undefined) headers["content-type"] = "application/json";
  if (csrf && method !== "GET") headers["x-csrf-token"] = csrf;
  const res = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), credentials: "same-origin" });
  const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
  if (body && typeof body.csrf_token === "string") csrf = body.csrf_token;
  return { status: res.status, body };
}

function message(a: Answer): string {
  const e = a.body?.error as { message?: string } | undefined;
  return e?.message ?? `HTTP ${a.status}`;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.textContent = text;
  return e;
}

function field(form: HTMLFormElement, label: string, name: string, type: string): void {
  const l = el("label", label + " ");
  const input = el("input");
  input.name = name;
  input.type = type;
  input.required = true;
  l.append(input);
  form.append(l, el("br"));
}

function say(root: HTMLElement, text: string): void {
  root.replaceChildren(el("p", text));
}

/** Signs in (if there is no session yet), then runs `then`. */
async function withSession(root: HTMLElement, why: string, then: () => Promise<void>): Promise<void> {
  if ((await api("GET", "/api/v1/me")).status === 200) return then();
  const form = el("form");
  form.append(el("p", why));
  field(form, "Email", "email", "email");
  field(form, "Password", "password", "password");
  form.append(el("button", "Sign in"));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const r = await api("POST", "/api/v1/auth/login", { email: data.get("email"), password: data.get("password") });
    if (r.status !== 200) return say(root, `Signing in failed: ${message(r)}`);
    await then();
  };
  root.replaceChildren(form);
}

export async function handleLink(root: HTMLElement): Promise<boolean> {
  const page = location.pathname as Page;
  if (!["/verify-email", "/confirm-email", "/reset-password", "/invitations/accept"].includes(page)) return false;
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
  history.replaceState(null, "", location.pathname); // the token leaves the address bar
  if (!token) {
    say(root, "This link has no token. Open the link from the email again.");
    return true;
  }
  if (page === "/verify-email") {
    await withSession(root, "Sign in as the account this address belongs to, to verify it.", async () => {
      const r = await api("POST", "/api/v1/auth/verify-email", { token });
      say(root, r.status === 200 ? "Your email address is verified." : message(r));
    });
  } else if (page === "/confirm-email") {
    await withSession(root, "Sign in to the account that asked for this address, to confirm it.", async () => {
      const r = await api("POST", "/api/v1/auth/confirm-email", { token });
      say(root, r.status === 200 ? `Your account now uses ${String(r.body?.email ?? "the new address")}.` : message(r));
    });
  } else if (page === "/invitations/accept") {
    await withSession(root, "Sign in (or sign up) as the invited address to accept.", async () => {
      const r = await api("POST", "/api/v1/invitations/accept", { token });
      say(root, r.status === 200 ? `You joined the workspace "${String(r.body?.name ?? "")}".` : message(r));
    });
  } else {
    const form = el("form");
    field(form, "New password (at least 10 characters)", "password", "password");
    form.append(el("button", "Set the new password"));
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const r = await api("POST", "/api/v1/auth/password-reset/confirm", { token, new_password: new FormData(form).get("password") });
      say(root, r.status === 204 ? "Your password is changed. Every session was signed out; sign in again." : message(r));
    };
    root.replaceChildren(form);
  }
  return true;
}
