// The signed-in start page: the workspace switcher and the workspace's apps.
import { useEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { me } from "../session";
import { workspaceId } from "../workspace";

type App = Schemas["App"];

export function Home() {
  const user = me.value;
  const ws = workspaceId.value;
  const [apps, setApps] = useState<App[] | null>(null);
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const load = async (id: string) => {
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/apps", { params: { path: { ws: id } } });
    if (!data) return setError(errorMessage(err, response.status));
    setApps(data.items);
  };
  useEffect(() => {
    if (ws) void load(ws);
  }, [ws]);
  if (!user || !ws) return null;
  const create = async (e: Event) => {
    e.preventDefault();
    setError("");
    const { error: err, response } = await api.POST("/api/v1/workspaces/{ws}/apps", {
      params: { path: { ws } },
      body: { name },
    });
    if (!response.ok) return setError(errorMessage(err, response.status));
    setName("");
    await load(ws);
  };
  const current = user.workspaces.find((w) => w.id === ws);
  return (
    <section>
      <h1>{current?.name ?? "Workspace"}</h1>
      <h2>Apps</h2>
      {apps === null ? (
        <p aria-busy="true">Loading…</p>
      ) : apps.length === 0 ? (
        <p>No app yet. An app holds one API's OpenAPI document and the tools made from it.</p>
      ) : (
        <ul class="list" aria-label="Apps">
          {apps.map((a) => (
            <li key={a.id}><a href={`/apps/${a.id}`}>{a.name}</a></li>
          ))}
        </ul>
      )}
      <form class="inline" onSubmit={create}>
        <Field label="New app name" name="app_name" value={name} onInput={setName} />
        <button type="submit">Create app</button>
      </form>
      <ErrorLine>{error}</ErrorLine>
      <Templates ws={ws} />
    </section>
  );
}

/** Start from a template: an app and a draft server in one click (issue 16). */
function Templates({ ws }: { ws: string }) {
  const [templates, setTemplates] = useState<Schemas["TemplateView"][]>([]);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  const { route } = useLocation();
  useEffect(() => {
    void api.GET("/api/v1/templates").then(({ data }) => setTemplates(data?.items ?? []));
  }, []);
  if (templates.length === 0) return null;
  const make = async (id: string) => {
    setError("");
    setBusy(id);
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/templates/{template}", {
      params: { path: { ws, template: id } },
      body: {},
    });
    setBusy("");
    if (!data) return setError(errorMessage(err, response.status));
    route(`/servers/${data.server.id}`);
  };
  return (
    <>
      <h2>Start from a template</h2>
      <ul class="list" aria-label="Templates">
        {templates.map((t) => (
          <li key={t.id}>
            <strong>{t.name}</strong>: {t.description} <small>Before publishing: {t.needs}</small>{" "}
            <button type="button" disabled={busy !== ""} onClick={() => void make(t.id)}>
              {busy === t.id ? "Creating…" : `Create a ${t.name} server`}
            </button>
          </li>
        ))}
      </ul>
      <ErrorLine>{error}</ErrorLine>
    </>
  );
}
