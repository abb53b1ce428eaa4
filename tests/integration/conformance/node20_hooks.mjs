// Module hook for node20_compat.mjs: only the conformance package's own files are touched.
const polyfill = (name) => `
import __fs from 'node:fs';
import __path from 'node:path';
const ${name} = (pattern, opts = {}) => {
  const cwd = opts.cwd ?? process.cwd();
  const base = pattern.replace(/^[*][*][/]/, '');
  const out = [];
  const walk = (rel) => {
    for (const e of __fs.readdirSync(__path.join(cwd, rel), {withFileTypes: true})) {
      const p = rel ? rel + '/' + e.name : e.name;
      if (e.isDirectory()) walk(p);
      else if (e.name === base) out.push(p);
    }
  };
  walk('');
  return out;
};
`;

export async function load(url, context, next) {
  const r = await next(url, context);
  if (!url.includes('/@modelcontextprotocol/conformance/dist/') || r.source == null) return r;
  let src = String(r.source);
  let name = null;
  src = src.replace(/globSync as (\w+),/, (_, n) => {
    name = n;
    return '';
  });
  if (name === null) return r;
  src = src.replace(/^#![^\n]*\n/, '');
  return {...r, source: polyfill(name) + src, shortCircuit: true};
}
