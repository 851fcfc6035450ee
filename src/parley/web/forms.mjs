/* The sign-in view and the dialogs (create a room, invite, password and sessions): forms
 * that call the HTTP API. The page binds them to its session with `bindForms`. */

import { inviteFromSearch, searchWithoutInvite } from "./admin.mjs";
import { api, errorMessage, retryAfterSeconds } from "./api.mjs";
import { ROOM_RE, USER_RE } from "./model.mjs";
import { el, showView } from "./views.mjs";

/**
 * What the forms need from the page: {session() (the current one), startApp(username),
 * sessionEnded(), selectRoom(name, focusComposer), refreshMembers(room)}.
 */
let page = null;
const DIALOGS = [el.roomDialog, el.inviteDialog, el.accountDialog];

let authMode = "login"; // or "register"
let authBusy = false;
let inviteNeeded = false; // the server asked for an invite, or the page came by an invite link
let registration = "open"; // the server's mode as last heard (GET /api/registration)
let endingNotice = ""; // why the session is about to end, when we ended it ourselves

export function setAuthMode(mode) {
  authMode = mode;
  const register = mode === "register";
  el.authTitle.textContent = register ? "Create your account" : "Sign in";
  el.authSubmit.textContent = register ? "Create account" : "Sign in";
  el.authSwitchText.textContent = register ? "Already have an account?" : "New to Parley?";
  el.authSwitch.textContent = register ? "Sign in" : "Create an account";
  el.authPass.autocomplete = register ? "new-password" : "current-password";
  el.authUserHint.hidden = !register;
  el.authPassHint.hidden = !register;
  el.authInviteField.hidden = !(register && inviteNeeded);
  // A closed server takes no new accounts: offering the form would only end in a refusal.
  el.authSwitch.hidden = el.authSwitchText.hidden = !register && registration === "closed";
  setAuthError("");
}

/** Ask how this server makes accounts now, and shape the form to it. */
async function learnRegistration() {
  let res;
  try {
    res = await api("GET", "/api/registration");
  } catch {
    return; // offline: the form stays as it is, and a refusal will say why
  }
  const mode = res.status === 200 && res.data && res.data.registration;
  if (!mode || mode === registration) return;
  registration = mode;
  if (mode === "invite") inviteNeeded = true;
  if (mode === "closed" && authMode === "register") {
    setAuthMode("login");
    setAuthError("This server is not taking new accounts. Ask its admin for one.");
  } else {
    setAuthMode(authMode);
  }
}

function setAuthError(text, field) {
  el.authError.textContent = text;
  for (const input of [el.authUser, el.authPass, el.authInvite]) input.removeAttribute("aria-invalid");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

export function showAuth(notice) {
  showView("auth");
  el.authNotice.hidden = !notice;
  el.authNotice.textContent = notice || "";
  el.authPass.value = "";
  setAuthError("");
  el.authUser.focus();
  learnRegistration();
}

async function submitAuth(event) {
  event.preventDefault();
  if (authBusy) return;
  const username = el.authUser.value.trim();
  const password = el.authPass.value;
  if (!USER_RE.test(username)) {
    setAuthError(username ? "Usernames use 1–32 letters, digits, “_”, “.” or “-”." : "Enter your username.", el.authUser);
    return;
  }
  if (authMode === "register" ? password.length < 8 : !password) {
    setAuthError(authMode === "register" ? "Use a password of at least 8 characters." : "Enter your password.", el.authPass);
    return;
  }
  authBusy = true;
  el.authSubmit.disabled = true;
  el.authForm.setAttribute("aria-busy", "true");
  setAuthError("");
  try {
    const register = authMode === "register";
    const invite = register && inviteNeeded ? el.authInvite.value.trim() : "";
    const body = invite ? { username, password, invite } : { username, password };
    const res = await api("POST", register ? "/api/register" : "/api/login", body);
    if (res.status === 200 || res.status === 201) {
      // The token in the body is deliberately ignored: the HttpOnly cookie carries the session.
      el.authPass.value = "";
      el.authNotice.hidden = true;
      if (invite) forgetInvite();
      page.startApp((res.data && res.data.username) || username);
    } else if (res.status === 403 && register) {
      await refusedSignUp(res, invite);
    } else if (res.status === 403) {
      setAuthError(errorMessage(res, "This account is banned."));
    } else if (res.status === 409) {
      setAuthError(`The name “${username}” is taken. Pick another one.`, el.authUser);
    } else if (res.status === 401) {
      setAuthError("Wrong username or password.", el.authPass);
    } else if (res.status === 429) {
      const wait = retryAfterSeconds(res);
      setAuthError(`Too many attempts. Try again in ${wait} s.`);
    } else if (res.status === 400) {
      setAuthError(errorMessage(res, "Check your username and password."));
    } else {
      setAuthError(errorMessage(res, `The server answered ${res.status}. Try again.`));
    }
  } catch {
    setAuthError("Can't reach Parley. Check your connection and try again.");
  } finally {
    authBusy = false;
    el.authSubmit.disabled = false;
    el.authForm.removeAttribute("aria-busy");
  }
}

/**
 * Sign-up was refused (403): the server is invite-only, or closed (the mode may have changed
 * since the form asked). Closed: back to signing in. Invite-only: the invite field shows; the
 * server's words say whether the code given was the trouble.
 */
async function refusedSignUp(res, invite) {
  await learnRegistration();
  if (registration === "closed") {
    setAuthMode("login");
    setAuthError("This server is not taking new accounts. Ask its admin for one.");
    return;
  }
  inviteNeeded = true;
  el.authInviteField.hidden = false;
  const fallback = invite ? "That invite code can't be used: it may be used up or expired." : "Sign-up needs an invite code here.";
  setAuthError(errorMessage(res, fallback), el.authInvite);
}

/** The page came by an invite link (/?invite=CODE): the sign-up form opens with the code. */
export function useInviteLink() {
  const code = inviteFromSearch(location.search);
  if (!code) return false;
  inviteNeeded = true;
  el.authInvite.value = code;
  setAuthMode("register");
  return true;
}

/** The invite was used: the address bar forgets it (a reload must not offer it again). */
function forgetInvite() {
  inviteNeeded = false;
  el.authInvite.value = "";
  history.replaceState(history.state, "", location.pathname + searchWithoutInvite(location.search) + location.hash);
}

// --------------------------------------------------------------- dialogs
function openRoomDialog() {
  el.roomForm.reset();
  el.roomError.textContent = "";
  el.roomNameInput.removeAttribute("aria-invalid");
  el.roomDialog.showModal();
  el.roomNameInput.focus();
}

async function submitRoom(event) {
  event.preventDefault();
  const name = el.roomNameInput.value.trim().toLowerCase();
  const isPrivate = el.roomPrivate.checked;
  if (!ROOM_RE.test(name)) {
    el.roomError.textContent = "Use 1–64 lowercase letters, digits, “-” or “_”.";
    el.roomNameInput.setAttribute("aria-invalid", "true");
    el.roomNameInput.focus();
    return;
  }
  try {
    const res = await api("POST", "/api/rooms", { room: name, private: isPrivate });
    const { chat, frames } = page.session();
    if (res.status === 201 || res.status === 200) {
      const room = chat.ensureRoom(name);
      room.private = isPrivate;
      room.owner = chat.me;
      room.known = true;
      if (isPrivate) room.members = chat.me ? [chat.me] : [];
      el.roomDialog.close();
      frames.joinAll();
      page.selectRoom(name, true);
      if (isPrivate) page.refreshMembers(room);
    } else if (res.status === 409) {
      el.roomError.textContent = `A room named “${name}” already exists.`;
      el.roomNameInput.setAttribute("aria-invalid", "true");
      el.roomNameInput.focus();
    } else if (res.status === 401) {
      el.roomDialog.close();
      page.sessionEnded();
    } else {
      el.roomError.textContent = errorMessage(res, `Could not create the room (${res.status}).`);
    }
  } catch {
    el.roomError.textContent = "Can't reach Parley right now. Try again in a moment.";
  }
}

function openInviteDialog() {
  const room = page.session().chat.currentRoom;
  if (!room) return;
  el.inviteForm.reset();
  el.inviteRoom.textContent = room.name;
  el.inviteError.textContent = "";
  el.inviteOk.textContent = "";
  el.inviteDialog.showModal();
  el.inviteName.focus();
}

async function submitInvite(event) {
  event.preventDefault();
  const room = page.session().chat.currentRoom;
  if (!room) return;
  const username = el.inviteName.value.trim();
  el.inviteOk.textContent = "";
  el.inviteError.textContent = "";
  if (!USER_RE.test(username)) {
    el.inviteError.textContent = "Enter a username.";
    el.inviteName.focus();
    return;
  }
  try {
    const res = await api("POST", `/api/rooms/${encodeURIComponent(room.name)}/members`, { username });
    if (res.status === 201 || res.status === 200 || res.status === 204) {
      el.inviteOk.textContent = `${username} can now see #${room.name}.`;
      el.inviteName.value = "";
      el.inviteName.focus();
      page.refreshMembers(room);
    } else if (res.status === 404) {
      el.inviteError.textContent = errorMessage(res, `There is no user named “${username}”.`);
    } else if (res.status === 401) {
      el.inviteDialog.close();
      page.sessionEnded();
    } else {
      el.inviteError.textContent = errorMessage(res, `Could not invite ${username} (${res.status}).`);
    }
  } catch {
    el.inviteError.textContent = "Can't reach Parley right now. Try again in a moment.";
  }
}

// ---------------------------------------------- account: password and sessions
function openAccountDialog() {
  el.passwordForm.reset();
  el.passwordUser.value = page.session().chat.me || ""; // lets a password manager file the new password
  for (const node of [el.passwordError, el.passwordOk, el.sessionsError]) node.textContent = "";
  setPasswordError("");
  el.accountDialog.showModal();
  el.passwordOld.focus();
}

function setPasswordError(text, field) {
  el.passwordError.textContent = text;
  for (const input of [el.passwordOld, el.passwordNew, el.passwordRepeat]) input.removeAttribute("aria-invalid");
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

async function submitPassword(event) {
  event.preventDefault();
  if (el.passwordSubmit.disabled) return;
  const old = el.passwordOld.value;
  const fresh = el.passwordNew.value;
  el.passwordOk.textContent = "";
  if (!old) return setPasswordError("Enter your current password.", el.passwordOld);
  if (fresh.length < 8) return setPasswordError("Use a new password of at least 8 characters.", el.passwordNew);
  if (fresh !== el.passwordRepeat.value) return setPasswordError("The two new passwords differ.", el.passwordRepeat);
  setPasswordError("");
  el.passwordSubmit.disabled = true;
  try {
    const res = await api("POST", "/api/password", { old, new: fresh });
    if (res.status === 204) {
      el.passwordForm.reset();
      el.passwordUser.value = page.session().chat.me || "";
      el.passwordOk.textContent = "Password changed. Every other session was signed out.";
    } else if (res.status === 403) {
      setPasswordError("That is not your current password.", el.passwordOld);
    } else if (res.status === 429) {
      setPasswordError(`Too many attempts. Try again in ${retryAfterSeconds(res)} s.`);
    } else if (res.status === 401) {
      el.accountDialog.close();
      page.sessionEnded();
    } else {
      setPasswordError(errorMessage(res, `Could not change the password (${res.status}).`));
    }
  } catch {
    setPasswordError("Can't reach Parley right now. Try again in a moment.");
  } finally {
    el.passwordSubmit.disabled = false;
  }
}

async function signOutEverywhere() {
  if (el.everywhere.disabled) return;
  const owner = page.session();
  el.sessionsError.textContent = "";
  el.everywhere.disabled = true;
  // Our own socket is closed with CLOSE_SIGNED_OUT too, maybe before the answer arrives.
  endingNotice = "You signed out everywhere.";
  try {
    const res = await api("DELETE", "/api/sessions");
    if (res.status === 204 || res.status === 401) {
      if (owner === page.session()) page.sessionEnded();
      return;
    }
    el.sessionsError.textContent = errorMessage(res, `Could not sign out everywhere (${res.status}).`);
  } catch {
    el.sessionsError.textContent = "Can't reach Parley right now. Try again in a moment.";
  } finally {
    if (owner === page.session()) endingNotice = "";
    el.everywhere.disabled = false;
  }
}

// ----------------------------------------------------------------- wiring
export function bindForms(p) {
  page = p;
  el.authForm.addEventListener("submit", submitAuth);
  el.authSwitch.addEventListener("click", () => {
    setAuthMode(authMode === "login" ? "register" : "login");
    el.authUser.focus();
  });
  el.newRoom.addEventListener("click", openRoomDialog);
  el.roomForm.addEventListener("submit", submitRoom);
  el.roomNameInput.addEventListener("input", () => {
    // Room names are lowercase with dashes: help instead of refusing.
    const fixed = el.roomNameInput.value.toLowerCase().replace(/\s+/g, "-");
    if (fixed !== el.roomNameInput.value) el.roomNameInput.value = fixed;
  });
  el.inviteBtn.addEventListener("click", openInviteDialog);
  el.inviteForm.addEventListener("submit", submitInvite);
  el.accountBtn.addEventListener("click", openAccountDialog);
  el.passwordForm.addEventListener("submit", submitPassword);
  el.everywhere.addEventListener("click", signOutEverywhere);
  for (const dialog of DIALOGS) {
    dialog.addEventListener("click", (event) => {
      if (event.target.closest("[data-close]") || event.target === dialog) dialog.close();
    });
  }
}

/** Why the session ended, for the sign-in view. */
export function endNotice() {
  return endingNotice || "Your session ended. Sign in again.";
}

/** Back to the sign-in view: the dialogs close, `notice` says why. */
export function signedOut(notice) {
  for (const dialog of DIALOGS) if (dialog.open) dialog.close();
  endingNotice = "";
  setAuthMode("login");
  showAuth(notice);
}
