import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorMessage } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { continueTo, safeNext } from "../next";
import { loadMe } from "../session";

export function SignUp() {
  const { route } = useLocation();
  const [form, setForm] = useState({ display_name: "", email: "", password: "", workspace_name: "" });
  const [terms, setTerms] = useState(false);
  const [privacy, setPrivacy] = useState(false);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!terms || !privacy) return setError("Accept the terms and the privacy policy to create an account.");
    setBusy(true);
    setError("");
    const body = { ...form, accept_terms: terms, accept_privacy: privacy };
    const { error: err, response } = await api.POST("/api/v1/auth/signup", { body });
    setBusy(false);
    if (!response.ok) return setError(errorMessage(err, response.status));
    const next = safeNext();
    if (next) return continueTo(next);
    await loadMe();
    route("/");
  };
  return (
    <section class="card narrow">
      <h1>Create your account</h1>
      <form onSubmit={submit}>
        <Field label="Your name" name="display_name" value={form.display_name} onInput={set("display_name")} autoComplete="name" />
        <Field label="Email" name="email" type="email" value={form.email} onInput={set("email")} autoComplete="email" />
        <Field label="Password" name="password" type="password" value={form.password} onInput={set("password")} autoComplete="new-password" minLength={10} hint="10 characters or more, not a common password." />
        <Field label="Workspace name" name="workspace_name" value={form.workspace_name} onInput={set("workspace_name")} hint="Your team or company; you can add more later." />
        <p class="check">
          <input id="accept-terms" type="checkbox" checked={terms} onChange={(e) => setTerms((e.currentTarget as HTMLInputElement).checked)} />
          <label for="accept-terms">I accept the <a href="/terms" target="_blank">terms of service</a></label>
        </p>
        <p class="check">
          <input id="accept-privacy" type="checkbox" checked={privacy} onChange={(e) => setPrivacy((e.currentTarget as HTMLInputElement).checked)} />
          <label for="accept-privacy">I accept the <a href="/privacy" target="_blank">privacy policy</a></label>
        </p>
        <ErrorLine>{error}</ErrorLine>
        <button type="submit" disabled={busy}>{busy ? "Creating…" : "Create account"}</button>
      </form>
      <p>Already have an account? <a href={"/sign-in" + window.location.search}>Sign in</a></p>
    </section>
  );
}
