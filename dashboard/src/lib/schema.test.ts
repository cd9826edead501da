import { describe, expect, it } from "vitest";
import { argumentFields, buildArguments, schemaTree, typeOf } from "./schema";

const petSchema = {
  type: "object",
  required: ["name"],
  properties: {
    name: { type: "string", description: "The pet's name", maxLength: 40 },
    status: { type: "string", enum: ["available", "sold"] },
    tags: { type: "array", items: { type: "object", properties: { id: { type: "integer" } } } },
    owner: { type: "object", required: ["id"], properties: { id: { type: "integer", minimum: 1 }, note: { type: ["string", "null"] } } },
  },
};

describe("schemaTree", () => {
  it("lists properties with types, required marks, notes and nested children", () => {
    const tree = schemaTree(petSchema);
    expect(tree.map((n) => [n.name, n.type, n.required])).toEqual([
      ["name", "string", true],
      ["status", "string", false],
      ["tags", "array of object", false],
      ["owner", "object", false],
    ]);
    expect(tree[0].notes).toEqual(["length ≤ 40"]);
    expect(tree[1].notes).toEqual(['one of: "available", "sold"']);
    expect(tree[2].children.map((c) => c.name)).toEqual(["id"]);
    expect(tree[3].children.map((c) => [c.name, c.type, c.required])).toEqual([["id", "integer", true], ["note", "string | null", false]]);
  });

  it("stops at the depth bound on a self-similar schema and ignores non-objects", () => {
    const deep: Record<string, unknown> = { type: "object", properties: {} };
    let cur = deep;
    for (let i = 0; i < 20; i++) {
      const next = { type: "object", properties: {} };
      (cur.properties as Record<string, unknown>).child = next;
      cur = next;
    }
    let depth = 0;
    for (let n = schemaTree(deep, 4); n.length; n = n[0].children) depth++;
    expect(depth).toBe(4);
    expect(schemaTree(null)).toEqual([]);
    expect(schemaTree("x")).toEqual([]);
    expect(typeOf({ oneOf: [{}, {}] })).toBe("one of 2 shapes");
  });
});

describe("buildArguments", () => {
  it("parses each kind, leaves out empty optional fields and names every bad value", () => {
    const fields = argumentFields({
      type: "object",
      required: ["id"],
      properties: { flag: { type: "boolean" }, id: { type: "integer" }, q: { type: "string" }, body: { type: "object" }, n: { type: "number" } },
    });
    expect(fields.map((f) => [f.name, f.kind])).toEqual([["id", "integer"], ["flag", "boolean"], ["q", "string"], ["body", "json"], ["n", "number"]]);
    expect(buildArguments(fields, { id: "7", flag: "true", q: " a b ", body: '{"x":1}', n: "" })).toEqual({
      args: { id: 7, flag: true, q: " a b ", body: { x: 1 } },
      errors: [],
    });
    expect(buildArguments(fields, { id: "7.5", flag: "yes", body: "{", n: "NaN" }).errors).toEqual([
      "id must be a whole number.",
      "flag must be true or false.",
      "body must be JSON.",
      "n must be a number.",
    ]);
    expect(buildArguments(fields, {}).errors).toEqual(["id is required."]);
  });
});
