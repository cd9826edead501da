// The audit log: every tool call of the workspace, newest first, filtered by server, tool and
// outcome. Calls are identified by a connection hash, never a person.
import { useEffect, useState } from "preact/hooks";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { workspaceId } from "../workspace";

type Row = Schemas["AuditRow"];
const OUTCOMES = ["ok", "upstream_error", "denied", "invalid", "unexpected_response"] as const;

export function Activity() {
  const ws = workspaceId.value;
  const [rows, setRows] = useState<Row[] | null>(null);
  const [tool, setTool] = useState("");
  const [outcome, setOutcome] = useState("");
  const [error, setError] = useState("");
  const load = async () => {
    if (!ws) return;
    const query = { limit: 200, ...(tool ? { tool } : {}), ...(outcome ? { outcome: outcome as (typeof OUTCOMES)[number] } : {}) };
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/audit", { params: { path: { ws }, query } });
    if (!data) return setError(errorMessage(err, response.status));
    setRows(data.items);
  };
  useEffect(() => { void load(); }, [ws, outcome]);
  return (
    <section>
      <h1>Activity</h1>
      <form class="inline filters" onSubmit={(e) => { e.preventDefault(); void load(); }}>
        <Field label="Tool" name="audit_tool" value={tool} onInput={setTool} required={false} />
        <p class="field">
          <label for="f-outcome">Outcome</label>
          <select id="f-outcome" value={outcome} onChange={(e) => setOutcome((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">Any</option>
            {OUTCOMES.map((o) => <option key={o} value={o}>{o}</option>)}
          </select>
        </p>
        <button type="submit">Filter</button>
      </form>
      <ErrorLine>{error}</ErrorLine>
      {rows === null ? <p aria-busy="true">Loading…</p> : rows.length === 0 ? <p>No call yet.</p> : (
        <table class="grid" aria-label="Tool calls">
          <thead><tr><th>Time (UTC)</th><th>Tool</th><th>Outcome</th><th>Status</th><th>Latency</th><th>Connection</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>{new Date(r.ts).toISOString().replace("T", " ").slice(0, 19)}</td>
                <td>{r.tool_name}</td>
                <td>{r.outcome}</td>
                <td>{r.upstream_status ?? "–"}</td>
                <td>{r.latency_ms} ms</td>
                <td><code>{r.connection_hash ?? "public"}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
