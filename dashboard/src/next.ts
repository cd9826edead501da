// Where to go after signing in when an agent's sign-in sent the browser here: FlowCP's own
// authorization page only (`/sign-in?next=/oauth/authorize?...`). Anything else is ignored, so
// the sign-in page can never be used to send someone to another site.

const ALLOWED = "/oauth/authorize?";

/** The `next` of the current address when it is an authorize request of this origin. */
export function safeNext(search: string = window.location.search, origin: string = window.location.origin): string | null {
  const next = new URLSearchParams(search).get("next");
  if (!next || !next.startsWith(ALLOWED)) return null;
  // Same origin, same path: a value like "/oauth/authorize?x" cannot name another host.
  const url = new URL(next, origin);
  if (url.origin !== origin || url.pathname !== "/oauth/authorize") return null;
  return url.pathname + url.search;
}

/** Continue to `next` (a full page load: the authorization page is not part of the dashboard). */
export function continueTo(next: string): void {
  window.location.assign(next);
}
