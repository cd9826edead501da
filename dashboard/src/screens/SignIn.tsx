import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorMessage } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { continueTo, safeNext } from "../next";
import { loadMe } from "../session";

export function SignIn() {
  const { route } = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    const { error: err, response } = await api.POST("/api/v1/auth/login", { body: { email, password } });
    setBusy(false);
    if (!response.ok) return setError(errorMessage(err, response.status));
    const next = safeNext();
    if (next) return continueTo(next);
    await loadMe();
    route("/");
  };
  return (
    <section class="card narrow">
      <h1>Sign in</h1>
      {safeNext() && <p role="note">An app asked to connect to FlowCP. Sign in to choose what it may use.</p>}
      <form onSubmit={submit}>
        <Field label="Email" name="email" type="email" value={email} onInput={setEmail} autoComplete="email" />
        <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autoComplete="current-password" />
        <ErrorLine>{error}</ErrorLine>
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
      <p>New to FlowCP? <a href={"/sign-up" + window.location.search}>Create an account</a></p>
    </section>
  );
}
