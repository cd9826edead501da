// Activity: calls, errors and p50/p95 latency over time (uPlot, loaded with this screen only),
// the busiest tools, and the audit log, all filtered by time window, server, tool and outcome.
// Calls are identified by a connection hash, never a person.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { errorRate, toColumns, WINDOWS, type Columns } from "../lib/series";
import { workspaceId } from "../workspace";

type Row = Schemas["AuditRow"];
type Series = Schemas["ActivitySeries"];
const OUTCOMES = ["ok", "upstream_error", "denied", "invalid", "unexpected_response"] as const;

interface Filters {
  window: number;
  server: string;
  tool: string;
  outcome: string;
}

export function Activity() {
  const ws = workspaceId.value;
  const [filters, setFilters] = useState<Filters>({ window: WINDOWS[1].ms, server: "", tool: "", outcome: "" });
  const [tool, setTool] = useState("");
  const [servers, setServers] = useState<Schemas["ServerView"][]>([]);
  const [series, setSeries] = useState<Series | null>(null);
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!ws) return;
    void api.GET("/api/v1/workspaces/{ws}/servers", { params: { path: { ws } } }).then(({ data }) => setServers(data?.items ?? []));
  }, [ws]);
  const load = async (f: Filters) => {
    if (!ws) return;
    setError("");
    const until = Date.now();
    const common = {
      since: until - f.window,
      until,
      ...(f.server ? { server: f.server } : {}),
      ...(f.tool ? { tool: f.tool } : {}),
      ...(f.outcome ? { outcome: f.outcome as (typeof OUTCOMES)[number] } : {}),
    };
    const [s, a] = await Promise.all([
      api.GET("/api/v1/workspaces/{ws}/activity", { params: { path: { ws }, query: common } }),
      api.GET("/api/v1/workspaces/{ws}/audit", { params: { path: { ws }, query: { limit: 200, ...common } } }),
    ]);
    // Each part shows what it got: the log does not wait for the charts, nor the reverse.
    setSeries(s.data ?? null);
    setRows(a.data?.items ?? []);
    if (!s.data) setError(errorMessage(s.error, s.response.status));
    else if (!a.data) setError(errorMessage(a.error, a.response.status));
  };
  useEffect(() => { void load(filters); }, [ws, filters]);
  const set = (patch: Partial<Filters>) => setFilters({ ...filters, ...patch });
  const serverName = (id: string) => servers.find((s) => s.id === id)?.name ?? id;
  const total = series?.total;
  const columns = useMemo(() => (series ? toColumns(series.buckets, series.since, series.until, series.bucket_ms) : null), [series]);
  return (
    <section>
      <h1>Activity</h1>
      {ws && <Plan ws={ws} serverName={serverName} />}
      {ws && <Retention ws={ws} />}
      <form class="inline filters" aria-label="Filters" onSubmit={(e) => { e.preventDefault(); set({ tool: tool.trim() }); }}>
        <p class="field">
          <label for="f-window">Window</label>
          <select id="f-window" value={String(filters.window)} onChange={(e) => set({ window: Number((e.currentTarget as HTMLSelectElement).value) })}>
            {WINDOWS.map((w) => <option key={w.ms} value={String(w.ms)}>{w.label}</option>)}
          </select>
        </p>
        <p class="field">
          <label for="f-server">Server</label>
          <select id="f-server" value={filters.server} onChange={(e) => set({ server: (e.currentTarget as HTMLSelectElement).value })}>
            <option value="">All servers</option>
            {servers.map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
          </select>
        </p>
        <Field label="Tool" name="audit_tool" value={tool} onInput={setTool} required={false} />
        <p class="field">
          <label for="f-outcome">Outcome</label>
          <select id="f-outcome" value={filters.outcome} onChange={(e) => set({ outcome: (e.currentTarget as HTMLSelectElement).value })}>
            <option value="">Any</option>
            {OUTCOMES.map((o) => <option key={o} value={o}>{o}</option>)}
          </select>
        </p>
        <button type="submit">Filter</button>
      </form>
      <ErrorLine>{error}</ErrorLine>
      {series && total && columns && (
        <>
          <p class="stats" aria-label="Summary">
            <span><strong>{total.calls}</strong> calls</span>
            <span><strong>{total.errors}</strong> errors ({errorRate(total.calls, total.errors)})</span>
            <span>p50 <strong>{total.calls ? `${total.p50_ms} ms` : "–"}</strong></span>
            <span>p95 <strong>{total.calls ? `${total.p95_ms} ms` : "–"}</strong></span>
          </p>
          {series.capped && <p class="muted">This window holds more calls than one view counts; the figures cover the newest 100,000. Narrow the window or filter by server for exact figures.</p>}
          <div class="two">
            <Chart title="Calls and errors" columns={columns} kind="calls" summary={`${total.calls} calls and ${total.errors} errors`} />
            <Chart title="Latency (ms)" columns={columns} kind="latency" summary={total.calls ? `p50 ${total.p50_ms} ms, p95 ${total.p95_ms} ms` : "no calls"} />
          </div>
          {series.tools.length > 0 && (
            <table class="grid" aria-label="Busiest tools">
              <thead><tr><th>Tool</th><th>Server</th><th>Calls</th><th>Errors</th><th>p50</th><th>p95</th></tr></thead>
              <tbody>
                {series.tools.map((t) => (
                  <tr key={`${t.server_id}/${t.tool_name}`}>
                    <td><button type="button" class="link" onClick={() => { setTool(t.tool_name); set({ tool: t.tool_name, server: t.server_id }); }}>{t.tool_name}</button></td>
                    <td>{serverName(t.server_id)}</td>
                    <td>{t.calls}</td>
                    <td>{t.errors} ({errorRate(t.calls, t.errors)})</td>
                    <td>{t.p50_ms} ms</td>
                    <td>{t.p95_ms} ms</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
      <h2>Calls</h2>
      {rows === null ? <p aria-busy="true">Loading…</p> : rows.length === 0 ? <p>No call in this window.</p> : (
        <table class="grid" aria-label="Tool calls">
          <thead><tr><th>Time (UTC)</th><th>Server</th><th>Tool</th><th>Outcome</th><th>Status</th><th>Latency</th><th>Connection</th><th>Target</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>{new Date(r.ts).toISOString().replace("T", " ").slice(0, 19)}</td>
                <td>{serverName(r.server_id)}</td>
                <td>{r.tool_name}</td>
                <td>{r.outcome}</td>
                <td>{r.upstream_status ?? "–"}</td>
                <td>{r.latency_ms} ms</td>
                <td><code>{r.connection_hash ?? "public"}</code></td>
                <td>{r.target ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** One uPlot chart; the canvas is described for screen readers by `summary`. */
function Chart({ title, columns, kind, summary }: { title: string; columns: Columns; kind: "calls" | "latency"; summary: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    let plot: { destroy(): void } | null = null;
    let gone = false;
    // Colors come from the page's CSS variables, so the chart is drawn again when the color
    // scheme changes.
    const scheme = matchMedia("(prefers-color-scheme: dark)");
    const draw = () => void Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")]).then(([{ default: UPlot }]) => {
      if (gone) return;
      plot?.destroy();
      const css = getComputedStyle(document.documentElement);
      const color = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
      const axis = { stroke: color("--muted", "#666"), grid: { stroke: color("--line", "#ddd"), width: 1 }, ticks: { stroke: color("--line", "#ddd") } };
      // Isolated buckets show as points (a line needs two neighbours).
      const points = { show: true, size: 5 };
      const series = kind === "calls"
        ? [{ label: "calls", stroke: color("--accent", "#2563eb"), width: 2 }, { label: "errors", stroke: color("--bad", "#dc2626"), width: 2 }]
        : [{ label: "p50 ms", stroke: color("--accent", "#2563eb"), width: 2, spanGaps: false, points }, { label: "p95 ms", stroke: color("--warn", "#d97706"), width: 2, spanGaps: false, points }];
      const data = kind === "calls" ? [columns[0], columns[1], columns[2]] : [columns[0], columns[3], columns[4]];
      plot = new UPlot(
        { width: Math.max(280, el.clientWidth), height: 200, series: [{}, ...series], axes: [axis, axis], legend: { show: true } },
        data as never,
        el,
      );
    });
    draw();
    scheme.addEventListener("change", draw);
    return () => { gone = true; scheme.removeEventListener("change", draw); plot?.destroy(); };
  }, [columns, kind]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${summary}`} />
    </figure>
  );
}

/** The workspace's plan, its limits and this month's calls per server against them. */
function Plan({ ws, serverName }: { ws: string; serverName: (id: string) => string }) {
  const [plan, setPlan] = useState<Schemas["PlanView"] | null>(null);
  useEffect(() => {
    void api.GET("/api/v1/workspaces/{ws}/plan", { params: { path: { ws } } }).then(({ data }) => setPlan(data ?? null));
  }, [ws]);
  if (!plan) return null;
  const l = plan.limits;
  const n = (v: number) => v.toLocaleString("en");
  return (
    <section aria-label="Plan" class="plan">
      <h2>Plan: {plan.plan ?? "unmetered"}{plan.default && plan.plan ? " (this deployment's default)" : ""}</h2>
      {l ? (
        <p>
          {n(plan.servers)} of {n(l.servers)} servers · up to {n(l.tools_per_server)} tools per server · {n(l.calls_per_server_month)} calls
          per server, {n(l.calls_per_user_month)} per caller and {n(l.calls_per_workspace_month)} in all each month (UTC; resets on{" "}
          {plan.resets_on}).
        </p>
      ) : (
        <p>No limits on servers, tools or calls.</p>
      )}
      {plan.usage.length > 0 && (
        <table>
          <caption>Calls in {plan.month}</caption>
          <thead><tr><th scope="col">Server</th><th scope="col">Calls</th>{l && <th scope="col">Of</th>}</tr></thead>
          <tbody>
            {plan.usage.map((u) => (
              <tr key={u.server_id}><td>{serverName(u.server_id)}</td><td>{n(u.calls)}</td>{l && <td>{n(l.calls_per_server_month)}</td>}</tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** How long the workspace keeps its audit log (7 to 90 days); owners and admins change it. */
function Retention({ ws }: { ws: string }) {
  const [days, setDays] = useState<number | null>(null);
  const [said, setSaid] = useState("");
  useEffect(() => {
    void api.GET("/api/v1/workspaces/{ws}", { params: { path: { ws } } }).then(({ data }) => setDays(data?.audit_retention_days ?? null));
  }, [ws]);
  if (days === null) return null;
  const save = async (e: Event) => {
    e.preventDefault();
    const { data, error, response } = await api.PATCH("/api/v1/workspaces/{ws}", { params: { path: { ws } }, body: { audit_retention_days: days } });
    setSaid(data ? `Calls are kept ${data.audit_retention_days} days.` : errorMessage(error, response.status));
  };
  return (
    <form class="inline" aria-label="Retention" onSubmit={(e) => void save(e)}>
      <p class="field">
        <label for="f-retention">Keep calls for (days)</label>
        <input id="f-retention" type="number" min={7} max={90} value={days} onInput={(e) => setDays(Number((e.currentTarget as HTMLInputElement).value))} />
      </p>
      <button type="submit">Save</button>
      {said && <p role="status">{said}</p>}
    </form>
  );
}
