// One app: import its OpenAPI document (URL, file or drop), read the import report and the
// history of imports with what each changed, and curate its tools in a table that stays fast for
// GitHub's 1,223 (windowed rendering); a tool's schemas read as trees, and "try it" shows the
// exact request a call would send.
import { useEffect, useMemo, useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { argumentFields, buildArguments, schemaTree, type SchemaNode } from "../lib/schema";
import { workspaceId } from "../workspace";
import { GitSource } from "./GitSource";

type Tool = Schemas["ToolView"];
type ImportRecord = Schemas["ImportRecord"];

export function AppPage() {
  const { params } = useRoute();
  const ws = workspaceId.value;
  const appId = params.id;
  const [app, setApp] = useState<Schemas["App"] | null>(null);
  const [tools, setTools] = useState<Tool[] | null>(null);
  const [report, setReport] = useState<ImportRecord | null>(null);
  const [history, setHistory] = useState<ImportRecord[]>([]);
  const [servers, setServers] = useState<Schemas["ServerView"][] | null>(null);
  const [error, setError] = useState("");
  const path = { ws: ws ?? "", app: appId };

  const loadHistory = async () => {
    const { data } = await api.GET("/api/v1/workspaces/{ws}/apps/{app}/imports", { params: { path } });
    setHistory(data?.items ?? []);
  };
  const loadServers = async () => {
    const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/servers", { params: { path: { ws: path.ws } } });
    if (!data) return setError(errorMessage(err, response.status));
    setServers(data.items.filter((x) => x.app_id === appId));
  };

  const loadTools = async () => {
    const all: Tool[] = [];
    let cursor: string | undefined;
    do {
      const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/apps/{app}/tools", {
        params: { path, query: { limit: 200, ...(cursor ? { cursor } : {}) } },
      });
      if (!data) return setError(errorMessage(err, response.status));
      all.push(...data.items);
      cursor = data.next_cursor ?? undefined;
    } while (cursor);
    setTools(all);
  };
  useEffect(() => {
    if (!ws) return;
    void (async () => {
      const { data, error: err, response } = await api.GET("/api/v1/workspaces/{ws}/apps/{app}", { params: { path } });
      if (!data) return setError(errorMessage(err, response.status));
      setApp(data);
      await Promise.all([loadTools(), loadHistory(), loadServers()]);
    })();
  }, [ws, appId]);

  if (!ws) return null;
  return (
    <section>
      <p><a href="/">← Apps</a></p>
      <h1>{app?.name ?? "App"}</h1>
      <ErrorLine>{error}</ErrorLine>
      <Importer path={path} onDone={async (r) => { setReport(r); await Promise.all([loadTools(), loadHistory()]); }} />
      {report && <Report record={report} />}
      <GitSource ws={ws} appId={appId} onSynced={async () => { await Promise.all([loadTools(), loadHistory()]); }} />
      <History items={history} path={path} onRestored={async (r) => { setReport(r); await Promise.all([loadTools(), loadHistory()]); }} />
      <Servers ws={ws} appId={appId} list={servers} />
      <h2>Tools</h2>
      {tools === null ? <p aria-busy="true">Loading…</p> : <ToolTable tools={tools} path={path} servers={servers ?? []} onChanged={setTools} />}
    </section>
  );
}

function Importer({ path, onDone }: { path: { ws: string; app: string }; onDone: (r: ImportRecord) => void | Promise<void> }) {
  const [url, setUrl] = useState("");
  const [busy, setBusy] = useState("");
  const [error, setError] = useState("");
  const send = async (what: string, init: { body: unknown; contentType: string }) => {
    setBusy(what);
    setError("");
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/apps/{app}/imports", {
      params: { path },
      body: init.body as Schemas["ImportUrlBody"],
      bodySerializer: (b: unknown) => (typeof b === "string" ? b : JSON.stringify(b)),
      headers: { "content-type": init.contentType },
    });
    setBusy("");
    if (!data) return setError(errorMessage(err, response.status));
    await onDone(data);
  };
  const fromFile = async (file: File | undefined) => {
    if (!file) return;
    const text = await file.text();
    const yaml = /\.ya?ml$/i.test(file.name) || !text.trimStart().startsWith("{");
    await send(`Importing ${file.name}…`, { body: text, contentType: yaml ? "application/yaml" : "application/json" });
  };
  return (
    <div class="card">
      <h2>Import an OpenAPI or Swagger document</h2>
      <form class="inline" onSubmit={(e) => { e.preventDefault(); void send("Fetching…", { body: { url }, contentType: "application/json" }); }}>
        <Field label="Document URL" name="doc_url" value={url} onInput={setUrl} hint="JSON or YAML, fetched once." />
        <button type="submit" disabled={!!busy}>Import from URL</button>
      </form>
      <div
        class="drop"
        onDragOver={(e) => e.preventDefault()}
        onDrop={(e) => { e.preventDefault(); void fromFile(e.dataTransfer?.files[0]); }}
      >
        <label for="doc-file">Or drop a file here, or choose one</label>
        <input id="doc-file" type="file" accept=".json,.yaml,.yml,application/json,application/yaml" onChange={(e) => void fromFile((e.currentTarget as HTMLInputElement).files?.[0])} />
      </div>
      {busy && <p aria-live="polite" aria-busy="true">{busy}</p>}
      <ErrorLine>{error}</ErrorLine>
    </div>
  );
}

function Report({ record }: { record: ImportRecord }) {
  const r = record.report;
  const warnings = r.problems ?? [];
  return (
    <div class="card" aria-label="Import report">
      <h2>Import report: {record.title ?? r.title} {record.api_version ? `(${record.api_version})` : ""}</h2>
      <p>
        {r.operations_total ?? 0} operations, <strong>{record.tool_count} tools</strong>, {record.warning_count} warnings.
        {" "}{record.added_count} added, {record.removed_count} removed, {record.changed_count} changed; curation kept.
      </p>
      {[["Added", r.added], ["Removed", r.removed], ["Changed", r.changed]].map(([label, names]) =>
        (names as string[] | undefined)?.length ? (
          <details key={label as string}>
            <summary>{label as string} ({(names as string[]).length})</summary>
            <p class="names">{(names as string[]).slice(0, 300).join(", ")}</p>
          </details>
        ) : null)}
      {warnings.length > 0 && (
        <details>
          <summary>Warnings and skipped operations ({warnings.length})</summary>
          <ul class="problems">
            {warnings.slice(0, 200).map((p, i) => (
              <li key={i}><code>{p.pointer}</code> {p.severity}: {p.message}</li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

/** Every import of the app, newest first; each opens its report and the tools it changed, and
 * an earlier one can be restored (rollback). */
function History({ items, path, onRestored }: { items: ImportRecord[]; path: { ws: string; app: string }; onRestored: (r: ImportRecord) => Promise<void> }) {
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState("");
  const restore = async (i: ImportRecord) => {
    if (!confirm("Restore the tools of this import? The app's servers go back to draft: verify and publish them to put it on the air.")) return;
    setError("");
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/apps/{app}/imports/{import}/restore", { params: { path: { ...path, import: i.id } } });
    if (!data) return setError(errorMessage(err, response.status));
    await onRestored(data);
  };
  if (items.length === 0) return null;
  const shown = items.find((i) => i.id === open);
  return (
    <div class="card">
      <h2>Import history</h2>
      <table class="grid" aria-label="Imports">
        <thead><tr><th>When (UTC)</th><th>Source</th><th>Document</th><th>Tools</th><th>Changes</th><th><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          {items.map((i, n) => (
            <tr key={i.id}>
              <td>{new Date(i.created_at).toISOString().replace("T", " ").slice(0, 16)}</td>
              <td>
                {i.commit ? <>{i.source_kind === "rollback" ? "rollback of " : ""}<code title={i.commit.sha}>{i.commit.sha.slice(0, 7)}</code> {i.commit.author}: {i.commit.message}</>
                  : i.source_kind === "rollback" ? "rollback"
                  : i.source_url ? <code title={i.source_url}>{i.source_url.length > 40 ? `${i.source_url.slice(0, 40)}…` : i.source_url}</code> : "upload"}
              </td>
              <td>{i.title ?? "–"} {i.api_version ? `(${i.api_version})` : ""} <small class="muted">{i.spec_version ?? ""} · sha256 {i.document_sha256.slice(0, 8)}</small></td>
              <td>{i.tool_count}</td>
              <td><span class="added">+{i.added_count}</span> <span class="removed">−{i.removed_count}</span> <span class="changed">~{i.changed_count}</span></td>
              <td>
                <button type="button" class="link" aria-expanded={open === i.id} onClick={() => setOpen(open === i.id ? null : i.id)}>{open === i.id ? "Hide" : "Show"} report</button>
                {n > 0 && <> <button type="button" class="link" aria-label={`Restore the import of ${new Date(i.created_at).toISOString().slice(0, 16)}`} onClick={() => void restore(i)}>Restore</button></>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorLine>{error}</ErrorLine>
      {shown && <Report record={shown} />}
    </div>
  );
}

const ROW = 40;
const VISIBLE = 16;

function ToolTable({ tools, path, servers, onChanged }: { tools: Tool[]; path: { ws: string; app: string }; servers: Schemas["ServerView"][]; onChanged: (t: Tool[]) => void }) {
  const [q, setQ] = useState("");
  const [show, setShow] = useState<"all" | "enabled" | "disabled">("all");
  const [tag, setTag] = useState("");
  const [top, setTop] = useState(0);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [error, setError] = useState("");
  const [editing, setEditing] = useState<Tool | null>(null);
  const tags = useMemo(() => [...new Set(tools.flatMap((t) => t.tags))].sort(), [tools]);
  const shown = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return tools.filter((t) =>
      (show === "all" || t.enabled === (show === "enabled")) &&
      (!tag || t.tags.includes(tag)) &&
      (!needle || t.name.toLowerCase().includes(needle) || t.path.toLowerCase().includes(needle) || t.description.toLowerCase().includes(needle)));
  }, [tools, q, show, tag]);
  const first = Math.max(0, Math.floor(top / ROW) - 4);
  const rows = shown.slice(first, first + VISIBLE + 8);
  const bulk = async (enabled: boolean) => {
    const ids = [...selected];
    if (ids.length === 0) return;
    setError("");
    const { error: err, response } = await api.POST("/api/v1/workspaces/{ws}/apps/{app}/tools/bulk", { params: { path }, body: { tool_ids: ids, enabled } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    onChanged(tools.map((t) => (selected.has(t.id) ? { ...t, enabled } : t)));
    setSelected(new Set());
  };
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id); else next.add(id);
    setSelected(next);
  };
  return (
    <div>
      <div class="inline filters">
        <Field label="Search tools" name="tool_q" value={q} onInput={setQ} required={false} />
        <p class="field">
          <label for="f-show">Show</label>
          <select id="f-show" value={show} onChange={(e) => setShow((e.currentTarget as HTMLSelectElement).value as typeof show)}>
            <option value="all">All</option><option value="enabled">Enabled</option><option value="disabled">Disabled</option>
          </select>
        </p>
        <p class="field">
          <label for="f-tag">Tag</label>
          <select id="f-tag" value={tag} onChange={(e) => setTag((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">Any</option>
            {tags.map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
        </p>
      </div>
      <p class="inline">
        <span aria-live="polite">{shown.length} of {tools.length} tools; {selected.size} selected</span>
        <button type="button" onClick={() => setSelected(new Set(shown.map((t) => t.id)))}>Select shown</button>
        <button type="button" disabled={!selected.size} onClick={() => void bulk(true)}>Enable selected</button>
        <button type="button" disabled={!selected.size} onClick={() => void bulk(false)}>Disable selected</button>
      </p>
      <ErrorLine>{error}</ErrorLine>
      {editing && (
        <ToolEditor key={editing.id} tool={editing} path={path} servers={servers}
          onClose={() => setEditing(null)}
          onSaved={(t) => { onChanged(tools.map((x) => (x.id === t.id ? t : x))); setEditing(null); }} />
      )}
      <div class="table" role="table" tabIndex={0} aria-label="Tools" aria-rowcount={shown.length}
        style={{ height: `${Math.min(shown.length, VISIBLE) * ROW}px` }}
        onScroll={(e) => setTop((e.currentTarget as HTMLElement).scrollTop)}>
        <div style={{ height: `${shown.length * ROW}px`, position: "relative" }}>
          {rows.map((t, i) => (
            <div role="row" key={t.id} class={`row ${t.enabled ? "" : "off"}`} aria-rowindex={first + i + 1} style={{ top: `${(first + i) * ROW}px` }}>
              <span role="cell"><input type="checkbox" aria-label={`Select ${t.name}`} checked={selected.has(t.id)} onChange={() => toggle(t.id)} /></span>
              <span role="cell" class="name"><button type="button" class="link" onClick={() => setEditing(t)}>{t.name}</button></span>
              <span role="cell" class="op"><code>{t.method} {t.path}</code></span>
              <span role="cell" class="state">{t.enabled ? "enabled" : "disabled"}</span>
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

/** The app's MCP servers, and a new one. */
function Servers({ ws, appId, list }: { ws: string; appId: string; list: Schemas["ServerView"][] | null }) {
  const { route } = useLocation();
  const [error, setError] = useState("");
  const create = async () => {
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/servers", { params: { path: { ws } }, body: { app_id: appId } });
    if (!data) return setError(errorMessage(err, response.status));
    route(`/servers/${data.id}`);
  };
  return (
    <div class="card">
      <h2>MCP servers</h2>
      {list && list.length > 0 && (
        <ul class="list" aria-label="Servers">
          {list.map((s) => <li key={s.id}><a href={`/servers/${s.id}`}>{s.name}</a> · {s.published ? "live" : "draft"} · {s.auth_mode}</li>)}
        </ul>
      )}
      <button type="button" onClick={() => void create()}>Create a server</button>
      <ErrorLine>{error}</ErrorLine>
    </div>
  );
}

/** Rename a tool and edit its description, with the generated text beside the curated one. */
function ToolEditor({ tool, path, servers, onClose, onSaved }: { tool: Tool; path: { ws: string; app: string }; servers: Schemas["ServerView"][]; onClose: () => void; onSaved: (t: Tool) => void }) {
  const [name, setName] = useState(tool.name);
  const [schemas, setSchemas] = useState<{ input: unknown; output: unknown } | null>(null);
  useEffect(() => {
    void (async () => {
      // The list with schemas, searched by the tool's path (few tools share one), then by id.
      const { data } = await api.GET("/api/v1/workspaces/{ws}/apps/{app}/tools", { params: { path, query: { q: tool.path, include: "schema", limit: 200 } } });
      const found = data?.items.find((t) => t.id === tool.id);
      setSchemas({ input: found?.input_schema ?? null, output: found?.output_schema ?? null });
    })();
  }, [tool.id]);
  const [description, setDescription] = useState(tool.description);
  const [error, setError] = useState("");
  const save = async (e: Event) => {
    e.preventDefault();
    setError("");
    const body = {
      ...(name !== tool.name ? { name } : {}),
      ...(description !== tool.description ? { description: description === tool.generated_description ? null : description } : {}),
    };
    const { data, error: err, response } = await api.PATCH("/api/v1/workspaces/{ws}/apps/{app}/tools/{tool}", { params: { path: { ...path, tool: tool.id } }, body });
    if (!data) return setError(errorMessage(err, response.status));
    onSaved(data);
  };
  return (
    <div class="card">
    <form onSubmit={save} aria-label={`Edit ${tool.name}`}>
      <h3>{tool.method} {tool.path}</h3>
      <Field label="Tool name" name="tool_name" value={name} onInput={setName} hint="1 to 64 letters, digits, _ or -, unique in the app; clients see this name." />
      <div class="two">
        <p class="field">
          <label for="f-description">Description clients see</label>
          <textarea id="f-description" rows={6} value={description} onInput={(e) => setDescription((e.currentTarget as HTMLTextAreaElement).value)} />
        </p>
        <div>
          <p><strong>Generated from the document</strong></p>
          <p class="muted">{tool.generated_description || "(none)"}</p>
          <button type="button" class="secondary" onClick={() => setDescription(tool.generated_description)}>Use the generated text</button>
        </div>
      </div>
      {tool.annotations && (
        <p class="muted">Annotations: {Object.entries(tool.annotations).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}: ${String(v)}`).join(", ")}</p>
      )}
      <p class="inline"><button type="submit">Save tool</button><button type="button" class="secondary" onClick={onClose}>Close</button></p>
      <ErrorLine>{error}</ErrorLine>
    </form>
      {schemas === null ? <p aria-busy="true">Loading the schemas…</p> : (
        <>
          <div class="two">
            <div>
              <h4>Input</h4>
              <Tree nodes={schemaTree(schemas.input)} empty="No arguments." />
            </div>
            <div>
              <h4>Output</h4>
              <Tree nodes={schemaTree(schemas.output)} empty={schemas.output ? "Not an object (see the raw schema)." : "No JSON answer is documented."} />
            </div>
          </div>
          <details>
            <summary>Raw JSON schemas</summary>
            <pre class="code">{JSON.stringify({ input: schemas.input, output: schemas.output }, null, 2)}</pre>
          </details>
          <TryIt tool={{ ...tool, name }} input={schemas.input} servers={servers} ws={path.ws} />
        </>
      )}
    </div>
  );
}

/** A schema's properties as a nested list: name, type, required, notes and description. */
function Tree({ nodes, empty }: { nodes: SchemaNode[]; empty: string }) {
  if (nodes.length === 0) return <p class="muted">{empty}</p>;
  return (
    <ul class="tree">
      {nodes.map((n) => (
        <li key={n.name}>
          <code>{n.name}</code> <span class="type">{n.type}</span>{n.required && <strong class="req"> required</strong>}
          {n.notes.length > 0 && <small class="muted"> · {n.notes.join("; ")}</small>}
          {n.description && <div class="muted">{n.description}</div>}
          {n.children.length > 0 && <Tree nodes={n.children} empty="" />}
        </li>
      ))}
    </ul>
  );
}

/**
 * "Try it": arguments from a form built from the input schema, the exact request FlowCP would
 * send with a server's settings (credential shown as [credential]), and for admins the answer
 * of the API itself.
 */
function TryIt({ tool, input, servers, ws }: { tool: Tool; input: unknown; servers: Schemas["ServerView"][]; ws: string }) {
  const fields = useMemo(() => argumentFields(input), [input]);
  const [values, setValues] = useState<Record<string, string>>({});
  const [server, setServer] = useState(servers[0]?.id ?? "");
  const [outcome, setOutcome] = useState<Schemas["TryOutcome"] | null>(null);
  const [error, setError] = useState("");
  if (servers.length === 0) return <p class="muted">Create a server for this app to try its tools.</p>;
  const send = async (run: boolean) => {
    setError("");
    const { args, errors } = buildArguments(fields, values);
    if (errors.length) return setError(errors.join(" "));
    if (run && tool.method !== "GET" && !confirm(`Send ${tool.method} ${tool.path} to the API for real? It may change data.`)) return;
    const { data, error: err, response } = await api.POST("/api/v1/workspaces/{ws}/servers/{srv}/try", { params: { path: { ws, srv: server } }, body: { tool: tool.name, arguments: args, run } });
    if (!data) return setError(errorMessage(err, response.status));
    setOutcome(data as Schemas["TryOutcome"]);
  };
  const req = outcome?.request;
  return (
    <fieldset class="try">
      <legend>Try it</legend>
      {servers.length > 1 && (
        <p class="field">
          <label for="f-try-server">With the settings of</label>
          <select id="f-try-server" value={server} onChange={(e) => setServer((e.currentTarget as HTMLSelectElement).value)}>
            {servers.map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
          </select>
        </p>
      )}
      {fields.map((f) => (
        <p class="field" key={f.name}>
          <label for={`try-${f.name}`}>{f.name}{f.required ? " (required)" : ""} <small class="muted">{f.kind}</small></label>
          {f.options.length > 0 || f.kind === "boolean" ? (
            <select id={`try-${f.name}`} value={values[f.name] ?? ""} onChange={(e) => setValues({ ...values, [f.name]: (e.currentTarget as HTMLSelectElement).value })}>
              <option value="">{f.required ? "Choose…" : "(leave out)"}</option>
              {(f.kind === "boolean" ? ["true", "false"] : f.options).map((o) => <option key={o} value={o}>{o}</option>)}
            </select>
          ) : (
            <input id={`try-${f.name}`} value={values[f.name] ?? ""} placeholder={f.kind === "json" ? "JSON" : ""} onInput={(e) => setValues({ ...values, [f.name]: (e.currentTarget as HTMLInputElement).value })} />
          )}
          {f.description && <small class="muted">{f.description}</small>}
        </p>
      ))}
      <p class="inline">
        <button type="button" class="secondary" onClick={() => void send(false)}>Show the request</button>
        <button type="button" class="secondary" onClick={() => void send(true)}>Send it to the API</button>
      </p>
      <ErrorLine>{error}</ErrorLine>
      {outcome && (
        <div aria-label="Request plan" role="region">
          {outcome.problems.length > 0 && <ErrorLine>{`The arguments would be refused: ${outcome.problems.join(" ")}`}</ErrorLine>}
          {outcome.error && <ErrorLine>{outcome.error}</ErrorLine>}
          {req && (
            <pre class="code">{[`${req.method} ${req.url}`, ...req.headers.map(([k, v]) => `${k}: ${v}`), ...(req.body ? ["", req.body] : [])].join("\n")}</pre>
          )}
          {outcome.response && (
            <>
              <p>The API answered <strong>HTTP {outcome.response.status}</strong> {outcome.response.content_type ? <code>{outcome.response.content_type}</code> : null}{outcome.response.truncated ? " (cut at 64 KiB)" : ""}</p>
              <pre class="code">{outcome.response.body}</pre>
            </>
          )}
        </div>
      )}
    </fieldset>
  );
}
