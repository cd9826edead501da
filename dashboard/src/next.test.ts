import { describe, expect, it } from "vitest";
import { safeNext } from "./next";

const O = "http://127.0.0.1:8787";

describe("safeNext", () => {
  it("keeps an authorize request of this origin", () => {
    const next = "/oauth/authorize?client_id=c&resource=http%3A%2F%2Flocalhost%2Fmcp";
    expect(safeNext("?next=" + encodeURIComponent(next), O)).toBe(next);
  });
  it("refuses anything else", () => {
    for (const bad of ["/", "https://evil.example/oauth/authorize?x", "//evil.example/oauth/authorize?x", "/oauth/authorize", "/oauth/authorizex?y", "/oauth/authorize/../../x?y", "javascript:alert(1)"]) {
      expect(safeNext("?next=" + encodeURIComponent(bad), O)).toBeNull();
    }
    expect(safeNext("", O)).toBeNull();
  });
});
