// Who is signed in: GET /api/v1/me, shared by every screen.
import { signal } from "@preact/signals";
import { api, forgetCsrf, rememberCsrf, type Schemas } from "./api/client";

export type Me = Schemas["Me"];

/** `undefined`: not known yet; `null`: signed out. */
export const me = signal<Me | null | undefined>(undefined);

export async function loadMe(): Promise<Me | null> {
  const { data, response } = await api.GET("/api/v1/me");
  if (response.status === 401 || !data) {
    forgetCsrf();
    me.value = null;
    return null;
  }
  rememberCsrf(data);
  me.value = data;
  return data;
}

export async function signOut(): Promise<void> {
  await api.POST("/api/v1/auth/logout");
  forgetCsrf();
  me.value = null;
}
