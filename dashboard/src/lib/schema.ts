// JSON Schema made readable: a tree of a tool's input or output schema, and the argument form
// "try it" fills from it. Pure functions, unit-tested (schema.test.ts).

export type Schema = Record<string, unknown>;

/** One node of a schema tree. */
export interface SchemaNode {
  name: string;
  type: string;
  required: boolean;
  description: string;
  /** Enum values, formats and bounds, in words. */
  notes: string[];
  children: SchemaNode[];
}

const asSchema = (v: unknown): Schema | null => (v && typeof v === "object" && !Array.isArray(v) ? (v as Schema) : null);

/** `string`, `integer`, `array of object`, `string | null`, `one of 2 shapes`... */
export function typeOf(s: Schema): string {
  const t = s.type;
  if (Array.isArray(t)) return t.join(" | ");
  if (t === "array") {
    const items = asSchema(s.items);
    return items ? `array of ${typeOf(items)}` : "array";
  }
  if (typeof t === "string") return t;
  for (const k of ["oneOf", "anyOf"] as const) {
    if (Array.isArray(s[k])) return `${k === "oneOf" ? "one" : "any"} of ${(s[k] as unknown[]).length} shapes`;
  }
  if (asSchema(s.properties)) return "object";
  return "any";
}

function notesOf(s: Schema): string[] {
  const out: string[] = [];
  if (Array.isArray(s.enum)) out.push(`one of: ${(s.enum as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`);
  if (typeof s.format === "string") out.push(`format ${s.format}`);
  if (s.default !== undefined) out.push(`default ${JSON.stringify(s.default)}`);
  for (const [k, word] of [["minimum", "≥"], ["maximum", "≤"], ["minLength", "length ≥"], ["maxLength", "length ≤"], ["minItems", "items ≥"], ["maxItems", "items ≤"]] as const) {
    if (typeof s[k] === "number") out.push(`${word} ${String(s[k])}`);
  }
  if (typeof s.pattern === "string") out.push(`pattern ${s.pattern}`);
  return out;
}

/** The properties of an object schema (or of its array items) as nodes, `depth` levels deep. */
export function schemaTree(schema: unknown, depth = 6): SchemaNode[] {
  const s = asSchema(schema);
  if (!s || depth <= 0) return [];
  const target = s.type === "array" ? asSchema(s.items) : s;
  const props = target ? asSchema(target.properties) : null;
  if (!target || !props) return [];
  const required = new Set(Array.isArray(target.required) ? (target.required as string[]) : []);
  return Object.entries(props).map(([name, raw]) => {
    const p = asSchema(raw) ?? {};
    return {
      name,
      type: typeOf(p),
      required: required.has(name),
      description: typeof p.description === "string" ? p.description : "",
      notes: notesOf(p),
      children: schemaTree(p, depth - 1),
    };
  });
}

/** One field of the "try it" form: scalars get an input, anything else JSON text. */
export interface ArgField {
  name: string;
  kind: "string" | "number" | "integer" | "boolean" | "json";
  required: boolean;
  description: string;
  options: string[];
}

export function argumentFields(schema: unknown): ArgField[] {
  const s = asSchema(schema);
  const props = s ? asSchema(s.properties) : null;
  if (!s || !props) return [];
  const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
  const fields = Object.entries(props).map(([name, raw]): ArgField => {
    const p = asSchema(raw) ?? {};
    const t = Array.isArray(p.type) ? (p.type as unknown[]).find((x) => x !== "null") : p.type;
    const kind = t === "string" || t === "number" || t === "integer" || t === "boolean" ? t : "json";
    return {
      name,
      kind,
      required: required.has(name),
      description: typeof p.description === "string" ? p.description : "",
      options: Array.isArray(p.enum) ? (p.enum as unknown[]).map(String) : [],
    };
  });
  // Required first, then as the document orders them.
  return [...fields.filter((f) => f.required), ...fields.filter((f) => !f.required)];
}

/**
 * The arguments object from the form's text values: empty optional fields are left out;
 * numbers, booleans and JSON are parsed, and each value that does not parse is named.
 */
export function buildArguments(fields: ArgField[], values: Record<string, string>): { args: Record<string, unknown>; errors: string[] } {
  const args: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const f of fields) {
    const raw = (values[f.name] ?? "").trim();
    if (raw === "") {
      if (f.required) errors.push(`${f.name} is required.`);
      continue;
    }
    if (f.kind === "string") args[f.name] = values[f.name];
    else if (f.kind === "boolean") {
      if (raw !== "true" && raw !== "false") errors.push(`${f.name} must be true or false.`);
      else args[f.name] = raw === "true";
    } else if (f.kind === "number" || f.kind === "integer") {
      const n = Number(raw);
      if (!Number.isFinite(n) || (f.kind === "integer" && !Number.isInteger(n))) errors.push(`${f.name} must be ${f.kind === "integer" ? "a whole number" : "a number"}.`);
      else args[f.name] = n;
    } else {
      try {
        args[f.name] = JSON.parse(raw);
      } catch {
        errors.push(`${f.name} must be JSON.`);
      }
    }
  }
  return { args, errors };
}
