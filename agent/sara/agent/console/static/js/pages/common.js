// What every console page does first: sign in (an API key kept in session storage), show who
// is signed in, and hand the page an API client once the key works.

import { ApiError, createApi, session } from "../api.js";
import { apiError } from "../words.js";
import { setFields } from "../dom.js";

function byId(id) {
  return document.getElementById(id);
}

/** Resolve with {api, me} once a working key is in session storage; then run the page. */
export async function boot(run) {
  const api = createApi({ key: () => session.key() });
  const form = byId("sign-in-form");
  const error = byId("sign-in-error");
  byId("sign-out").addEventListener("click", () => {
    session.clear();
    window.location.reload();
  });

  async function attempt(typed = false) {
    let me;
    try {
      me = await api.me();
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) {
        session.clear();
        askForKey(typed ? "That key is not valid for this agent." : "");
      } else {
        askForKey(apiError(failure));
      }
      return;
    }
    signedIn(me);
    await run({ api, me });
  }

  function askForKey(message) {
    byId("main").hidden = true;
    byId("session").hidden = true;
    byId("sign-in").hidden = false;
    error.textContent = message;
    byId("api-key").focus();
  }

  function signedIn(me) {
    byId("sign-in").hidden = true;
    byId("main").hidden = false;
    const who = byId("session");
    setFields(who, { name: me.name, roles: `(${me.roles.join(", ")})` });
    who.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = byId("api-key");
    const key = input.value.trim();
    if (!key) return;
    session.setKey(key);
    input.value = "";
    error.textContent = "";
    await attempt(true);
  });

  // Without a key, ask for one — unless the agent runs without authentication (--no-auth).
  if (session.key() || document.body.dataset.auth === "disabled") await attempt();
  else askForKey("");
}

export const consoleNow = () => document.body.dataset.consoleNow || "live";
