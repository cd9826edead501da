// The signed-in start page: the workspace switcher and the workspace's apps.
import { useEffect, useState } from "preact/hooks";
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
    </section>
  );
}
