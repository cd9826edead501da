// Small form pieces shared by the screens: a labelled field, an error line, and a form's
// submit with its outcome.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";

export function Field(props: {
  label: string;
  name: string;
  type?: "text" | "email" | "password";
  value: string;
  onInput: (v: string) => void;
  autoComplete?: string;
  hint?: string;
  required?: boolean;
  minLength?: number;
}) {
  const id = `f-${props.name}`;
  return (
    <p class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={(props.type ?? "text") as "text"}
        value={props.value}
        required={props.required ?? true}
        minLength={props.minLength}
        autoComplete={props.autoComplete}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        onInput={(e) => props.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      {props.hint && <small id={`${id}-hint`}>{props.hint}</small>}
    </p>
  );
}

export function ErrorLine({ children }: { children: ComponentChildren }) {
  return children ? <p role="alert" class="error">{children}</p> : null;
}

/** What a submit ended with: an error to show, a confirmation, or nothing (it was cancelled). */
export type Outcome = { error: string } | { done: string } | void;

/**
 * A form's submit: clears the last outcome, runs `run`, shows what it returned. Render
 * `outcome` after the form's button.
 */
export function useSubmit(run: () => Promise<Outcome>) {
  const [error, setError] = useState("");
  const [done, setDone] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    setError("");
    setDone("");
    const r = await run();
    if (r && "error" in r) setError(r.error);
    else if (r) setDone(r.done);
  };
  const outcome = (
    <>
      <ErrorLine>{error}</ErrorLine>
      {done && <p role="status">{done}</p>}
    </>
  );
  return { submit, outcome };
}
