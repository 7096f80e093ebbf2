// Filling the page's <template> cards. Data only ever goes in as textContent (or attributes
// set one by one): never innerHTML, so nothing from the chart or the model can become markup.

/** A fresh copy of <template id="tpl-NAME">'s element, its [data-field]s filled. */
export function fill(name, values = {}) {
  const tpl = document.getElementById(`tpl-${name}`);
  if (!tpl) throw new Error(`the page has no template ${name}`);
  const node = tpl.content.firstElementChild.cloneNode(true);
  setFields(node, values);
  return node;
}

/**
 * Set every [data-field=K] under `root` to values[K] (as text); a [data-part=K] wrapper is
 * hidden when values[K] is empty.
 */
export function setFields(root, values) {
  for (const [key, value] of Object.entries(values)) {
    const text = value === null || value === undefined ? "" : String(value);
    for (const el of root.querySelectorAll(`[data-field="${key}"]`)) el.textContent = text;
    for (const part of root.querySelectorAll(`[data-part="${key}"]`)) part.hidden = text === "";
  }
}

export function part(root, name) {
  return root.querySelector(`[data-part="${name}"]`);
}

export function show(el, visible) {
  if (el) el.hidden = !visible;
}

/** A notice card (an error or a note) with a title and words. */
export function notice(title, text, tone = "attention") {
  const node = fill("notice", { title, text });
  node.dataset.tone = tone;
  if (tone !== "bad" && tone !== "attention") node.setAttribute("role", "status");
  return node;
}

export function clear(el) {
  el.replaceChildren();
}
