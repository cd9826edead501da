// The workspace's members and roles, and invitations: admins invite and remove members, owners
// change roles, anyone may leave (the API enforces each rule; the screen only offers them).
import { useEffect, useState } from "preact/hooks";
import { api, errorMessage, type Schemas } from "../api/client";
import { ErrorLine, Field } from "../forms";
import { loadMe, me } from "../session";
import { workspaceId } from "../workspace";

export function Members() {
  const ws = workspaceId.value;
  const [members, setMembers] = useState<Schemas["Member"][] | null>(null);
  const [invites, setInvites] = useState<Schemas["Invitation"][]>([]);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Schemas["Role"]>("member");
  const [error, setError] = useState("");
  const [said, setSaid] = useState("");
  const load = async () => {
    if (!ws) return;
    const m = await api.GET("/api/v1/workspaces/{ws}/members", { params: { path: { ws } } });
    if (!m.data) return setError(errorMessage(m.error, m.response.status));
    setMembers(m.data.items);
    // Only admins see pending invitations; members get 403 here, which is not an error to show.
    const i = await api.GET("/api/v1/workspaces/{ws}/invitations", { params: { path: { ws } } });
    setInvites(i.data?.items ?? []);
  };
  useEffect(() => { void load(); }, [ws]);
  if (!ws) return null;
  const invite = async (e: Event) => {
    e.preventDefault();
    setError("");
    setSaid("");
    const { error: err, response } = await api.POST("/api/v1/workspaces/{ws}/invitations", { params: { path: { ws } }, body: { email, role } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    setSaid(`An invitation is on its way to ${email}.`);
    setEmail("");
    await load();
  };
  const withdraw = async (id: string) => {
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/invitations/{inv}", { params: { path: { ws, inv: id } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    await load();
  };
  const myId = me.value?.user.id;
  const myRole = members?.find((m) => m.user_id === myId)?.role;
  const setMemberRole = async (m: Schemas["Member"], next: Schemas["Role"]) => {
    setError("");
    const { error: err, response } = await api.PATCH("/api/v1/workspaces/{ws}/members/{user}", { params: { path: { ws, user: m.user_id } }, body: { role: next } });
    if (!response.ok) setError(errorMessage(err, response.status));
    await load();
  };
  const remove = async (m: Schemas["Member"]) => {
    const self = m.user_id === myId;
    if (!confirm(self ? "Leave this workspace?" : `Remove ${m.email} from this workspace? Access keys they created are revoked.`)) return;
    setError("");
    const { error: err, response } = await api.DELETE("/api/v1/workspaces/{ws}/members/{user}", { params: { path: { ws, user: m.user_id } } });
    if (!response.ok) return setError(errorMessage(err, response.status));
    if (self) {
      await loadMe();
      return;
    }
    setSaid(`${m.email} was removed.`);
    await load();
  };
  return (
    <section>
      <h1>Members</h1>
      {members && (
        <table class="grid" aria-label="Members">
          <thead><tr><th>Name</th><th>Email</th><th>Role</th><th>Since</th><th><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {members.map((m) => (
              <tr key={m.user_id}>
                <td>{m.display_name}{m.user_id === myId ? " (you)" : ""}</td>
                <td>{m.email}</td>
                <td>
                  {myRole === "owner" && m.user_id !== myId ? (
                    <select aria-label={`Role of ${m.email}`} value={m.role} onChange={(e) => void setMemberRole(m, (e.currentTarget as HTMLSelectElement).value as Schemas["Role"])}>
                      <option value="owner">Owner</option>
                      <option value="admin">Admin</option>
                      <option value="member">Member</option>
                    </select>
                  ) : m.role}
                </td>
                <td>{new Date(m.added_at).toISOString().slice(0, 10)}</td>
                <td>
                  {(m.user_id === myId || ((myRole === "owner" || myRole === "admin") && m.role !== "owner")) && (
                    <button type="button" class="link" onClick={() => void remove(m)}>{m.user_id === myId ? "Leave" : `Remove ${m.email}`}</button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {invites.length > 0 && (
        <>
          <h2>Pending invitations</h2>
          <ul class="list" aria-label="Invitations">
            {invites.map((i) => (
              <li key={i.id}>{i.email} as {i.role}, expires {new Date(i.expires_at).toISOString().slice(0, 10)} <button type="button" class="link" onClick={() => void withdraw(i.id)}>Withdraw {i.email}</button></li>
            ))}
          </ul>
        </>
      )}
      <form class="card" onSubmit={invite}>
        <h2>Invite someone</h2>
        <Field label="Email to invite" name="invite_email" type="email" value={email} onInput={setEmail} />
        <p class="field">
          <label for="f-role">Role</label>
          <select id="f-role" value={role} onChange={(e) => setRole((e.currentTarget as HTMLSelectElement).value as Schemas["Role"])}>
            <option value="member">Member</option>
            <option value="admin">Admin</option>
          </select>
        </p>
        <button type="submit">Send invitation</button>
        <ErrorLine>{error}</ErrorLine>
        {said && <p role="status">{said}</p>}
      </form>
    </section>
  );
}
