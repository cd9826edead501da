// Workspace secrets: names only; a value is set (write-only) or the secret deleted.
import { useEffect, useState } from "preact/hooks";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { workspaceId } from "../workspace";

export function Secrets() {
  const ws = workspaceId.value;
  const [list, setList] = useState<Schemas["SecretInfo"][] | null>(null);
  const [name, setName] = useState("");
  const [value, setValue] = useState("");
  const [error, setError] = useState("");
  const load = async () => {
    if (!ws) return;
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/secrets", { params: { path: { ws } } });
    if (!data) return setError(errorMessage(err, response.status));
    setList(data.items);
  };
  useEffect(() => { void load(); }, [ws]);
  if (!ws) return null;
  const put = async (e: Event) => {
    e.preventDefault();
    setError("");
    const { error: err, response } = await api.PUT("/api/v1/workspaces/{ws}/secrets/{name}", { params: { path: { ws, name } }, body: { value } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    setName("");
    setValue("");
    await load();
  };
  const remove = async (n: string) => {
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/secrets/{name}", { params: { path: { ws, name: n } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    await load();
  };
  return (
    <section>
      <h1>Secrets</h1>
      <p>Values are encrypted and write-only: FlowCP never shows one again.</p>
      {list && list.length > 0 ? (
        <ul class="list" aria-label="Secrets">
          {list.map((s) => (
            <li key={s.name}><code>{s.name}</code> · updated {new Date(s.updated_at).toISOString().slice(0, 10)} <button type="button" class="link" onClick={() => void remove(s.name)}>Delete {s.name}</button></li>
          ))}
        </ul>
      ) : list && <p>No secret yet.</p>}
      <form class="card" onSubmit={put}>
        <h2>Set a secret</h2>
        <Field label="Name" name="secret_name" value={name} onInput={setName} hint="Letters, digits and _ ." />
        <Field label="Value" name="secret_value" type="password" value={value} onInput={setValue} />
        <button type="submit">Save secret</button>
        <ErrorLine>{error}</ErrorLine>
      </form>
    </section>
  );
}
