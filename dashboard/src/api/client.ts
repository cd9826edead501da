// The typed client of FlowCP's owner API, generated from the Worker's own OpenAPI document
// (schema.d.ts: `npm run gen:api`; `make test` fails when it drifts from the Worker).
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

let csrf: string | null = null;

/** Remembers the session's CSRF token from any answer that carries one. */
export function rememberCsrf(body: unknown): void {
  const token = (body as { csrf_token?: unknown } | null)?.csrf_token;
  if (typeof token === "string") csrf = token;
}

export function forgetCsrf(): void {
  csrf = null;
}

const withCsrf: Middleware = {
  onRequest({ request }) {
    if (csrf && request.method !== "GET") request.headers.set("x-csrf-token", csrf);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(withCsrf);

/** The message an API error carries, by its code when the API gave one. */
export function errorMessage(error: unknown, status?: number): string {
  const e = (error as { error?: { code?: string; message?: string } } | undefined)?.error;
  if (e?.message) return e.message;
  return status ? `The request failed (HTTP ${status}).` : "The request failed; check your connection.";
}
