import { render } from "preact";
import { App } from "./App";
import { Portal, portalServer } from "./screens/Portal";
import { handleLink } from "./links";
import "./style.css";

// The pages emailed links open (verify email, reset password, accept an invitation) are plain
// pages of their own; everything else is the dashboard.
async function main(): Promise<void> {
  const root = document.getElementById("app");
  if (!root) return;
  if (await handleLink(root)) return;
  // The end-user portal of a per-user-key server: no FlowCP account involved.
  const server = portalServer(location.pathname);
  if (server) {
    render(<Portal server={server} />, root);
    return;
  }
  render(<App />, root);
}

void main();
