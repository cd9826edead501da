// Small form pieces shared by the screens: a labelled field and an error line.
import type { ComponentChildren } from "preact";

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
