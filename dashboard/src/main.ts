import { handleLink } from "./links";

// Dashboard placeholder: shows the Worker's /healthz. The real dashboard is a later issue.
interface Health {
  status: string;
  version: string;
  checks: { d1: string; kv: string };
}

function show(field: string, value: string): void {
  const el = document.querySelector<HTMLElement>(`[data-field="${field}"]`);
  if (el) el.textContent = value;
}

async function main(): Promise<void> {
  const root = document.querySelector<HTMLElement>("main");
  if (root && (await handleLink(root))) return;
  try {
    const res = await fetch("/healthz", { headers: { accept: "application/json" } });
    const h = (await res.json()) as Health;
    show("status", h.status);
    show("version", h.version);
    show("d1", h.checks.d1);
    show("kv", h.checks.kv);
  } catch {
    show("status", "unreachable");
  }
}

void main();
