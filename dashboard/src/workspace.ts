// The workspace the dashboard shows: the last one chosen (remembered per browser), else the
// first the user belongs to.
import { computed, signal } from "@preact/signals";
import { me } from "./session";

const chosen = signal<string | null>(localStorage.getItem("flowcp.workspace"));

export const workspaceId = computed(() => {
  const list = me.value?.workspaces ?? [];
  return list.find((w) => w.id === chosen.value)?.id ?? list[0]?.id ?? null;
});

export function chooseWorkspace(id: string): void {
  chosen.value = id;
  localStorage.setItem("flowcp.workspace", id);
}
