import { describe, expect, it } from "vitest";
import { errorRate, toColumns } from "./series";

describe("toColumns", () => {
  it("fills every bucket of the window: zero calls, and gaps for latency", () => {
    const since = 1_000_000;
    const cols = toColumns(
      [
        { start: since, calls: 3, errors: 1, p50_ms: 10, p95_ms: 30 },
        { start: since + 120_000, calls: 1, errors: 0, p50_ms: 5, p95_ms: 5 },
      ],
      since,
      since + 240_000,
      60_000,
    );
    expect(cols[0]).toEqual([1000, 1060, 1120, 1180]);
    expect(cols[1]).toEqual([3, 0, 1, 0]);
    expect(cols[2]).toEqual([1, 0, 0, 0]);
    expect(cols[3]).toEqual([10, null, 5, null]);
    expect(cols[4]).toEqual([30, null, 5, null]);
  });

  it("is empty for an empty window", () => {
    expect(toColumns([], 5, 5, 1000)).toEqual([[], [], [], [], []]);
  });
});

describe("errorRate", () => {
  it("is a percentage with one decimal", () => {
    expect(errorRate(0, 0)).toBe("–");
    expect(errorRate(3, 1)).toBe("33.3%");
  });
});
