// The privacy policy and the terms, linked from the sign-up consent boxes. The privacy text
// states what FlowCP stores, mode by mode; keep it in step with docs/security.md.
// The security contact is the Worker's /.well-known/security.txt (RFC 9116).
export function Legal({ page }: { page: "privacy" | "terms" }) {
  return page === "privacy" ? <Privacy /> : <Terms />;
}

function Privacy() {
  return (
    <article class="prose">
      <h1>Privacy policy</h1>
      <p>FlowCP turns an API's OpenAPI document into a hosted MCP server. This page says what it keeps and why.</p>
      <h2>Your account</h2>
      <p>Your email address, display name, a password hash (Argon2id; never the password) and your workspaces and roles. Sessions are random tokens stored as hashes. You can export your data or delete your account at any time.</p>
      <h2>What each way of calling an API keeps</h2>
      <ul>
        <li><strong>No auth, API key, bearer token:</strong> the key or token an owner sets is encrypted (AES-256-GCM) and sent only to the API's own address.</li>
        <li><strong>Per-user OAuth:</strong> FlowCP keeps <em>no</em> end-user token. Each user's tokens travel sealed inside the tokens their MCP client holds; FlowCP stores only connection metadata (a hash, the client's name, scopes, times).</li>
        <li><strong>Per-user keys:</strong> the exception, by design. When you sign in at a server's portal, FlowCP keeps your provider refresh token and a short-lived access token, encrypted (AES-256-GCM), to call the API as you for the holder of your key. It stores a hash of who you are at the provider, never your name or address. Revoking in the portal deletes both tokens and ends every key at once; so does revoking consent at the provider (at the next refresh). You can export or delete your data in the portal. If the server's owner turned on store tools, FlowCP also keeps your latest answers of the synced tools (encrypted), refreshes them hourly as you, and deletes them when you revoke or delete your data, or 30 days after their last refresh.</li>
        <li><strong>The Git integration</strong> (when offered) keeps FlowCP's own provider refresh token, encrypted, until it is disconnected.</li>
      </ul>
      <h2>Activity logs</h2>
      <p>Each tool call is logged with its time, tool, outcome, status, latency and size, the workspace's plan, the value of one argument the server's owner names as the call's target (such as an environment), and a hash of the connection or key — never a person's identity, never request or response bodies, never a credential. Logs are kept for the workspace's retention: 30 days by default, 7 to 90 as its owner chooses, and go with the workspace.</p>
      <p>For plans' monthly quotas FlowCP counts calls per server and per connection hash in each calendar month; the counts are deleted after the following month, with the workspace, or when a per-user-key user deletes their data.</p>
      <h2 id="security">Reporting a security problem</h2>
      <p>The operator's security contact is in <a href="/.well-known/security.txt">/.well-known/security.txt</a>. Please report vulnerabilities there rather than in public, and give us time to fix them before you disclose.</p>
    </article>
  );
}

function Terms() {
  return (
    <article class="prose">
      <h1>Terms of service</h1>
      <p>You may use FlowCP to publish MCP servers for APIs you are allowed to expose, with credentials you are allowed to use. You are responsible for what your servers' tools do and for who you give access to.</p>
      <p>Do not use FlowCP to reach systems you have no right to reach, to store data you have no right to hold, or to get around an API's terms.</p>
      <p>FlowCP is provided as is. We may suspend a server that harms others. You can delete your account and its data at any time.</p>
    </article>
  );
}
