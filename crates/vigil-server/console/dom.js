// Vigil's web console: building the page from data, and formatting values.
// Whatever the server sent goes in as text nodes and attribute values, never
// as markup, so a statement or an audit record cannot inject HTML.

// ---- DOM building ----

/** An element: attributes (on* are listeners), then children (strings become text). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.setAttribute('class', value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A table in a scroll container: `head` names, `rows` arrays of cells. */
export function table(caption, head, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty' }, empty || 'Nothing to show.');
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, head.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

/** Definition list from [term, value] pairs; empty values are left out. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs
    .filter(([, value]) => value !== null && value !== undefined && value !== '' &&
      !(Array.isArray(value) && !value.length))
    .map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value))));
}

export function badge(decision) {
  const text = decision || '–';
  return h('span', { class: `tag tag-${String(text).replace(/[^a-z_]/g, '')}` }, text);
}

export function notice(text, kind) {
  return h('p', { class: `notice ${kind || ''}` }, text);
}

export function link(href, text) {
  return h('a', { href }, text);
}


// ---- formatting ----

export function when(rfc3339) {
  if (!rfc3339) return '–';
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return String(rfc3339);
  return h('time', { datetime: rfc3339, title: date.toString() }, `${clock(date)} (${relative(date)})`);
}

function clock(date) {
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

function relative(date) {
  const secs = Math.round((date.getTime() - Date.now()) / 1000);
  const span = duration(Math.abs(secs));
  return secs <= 0 ? `${span} ago` : `in ${span}`;
}

export function duration(secs) {
  secs = Math.round(secs);
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${secs % 60 ? ` ${secs % 60}s` : ''}`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86400)}d ${Math.floor((secs % 86400) / 3600)}h`;
}

export function micros(us) {
  if (us === null || us === undefined) return '–';
  return us < 1000 ? `${us} µs` : us < 1e6 ? `${(us / 1000).toFixed(1)} ms` : `${(us / 1e6).toFixed(2)} s`;
}

export function count(n) {
  return typeof n === 'number' ? n.toLocaleString() : '–';
}

export function cut(text, length) {
  text = String(text || '').replace(/\s+/g, ' ').trim();
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** Compact `key=value` text for any JSON value. */
export function compact(value) {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map(compact).join(', ');
  if (typeof value === 'object') {
    return Object.entries(value).filter(([, v]) => !blank(v)).map(([k, v]) =>
      (v && typeof v === 'object' && !Array.isArray(v) ? `${k} {${compact(v)}}` : `${k}=${compact(v)}`)).join('; ');
  }
  return String(value);
}

/** Nothing worth showing: null, '', [] or {}. */
function blank(value) {
  if (value === null || value === undefined || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value).length === 0;
}
