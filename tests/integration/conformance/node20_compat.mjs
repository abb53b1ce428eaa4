// Lets @modelcontextprotocol/conformance 0.1.16 run on Node 20, which lacks fs.globSync (added
// in Node 22): the hook in node20_hooks.mjs rewrites the package's import of globSync into a
// small equivalent for the one pattern it uses ("**/NAME"). No effect on Node 22 and later.
//   node --import ./tests/integration/conformance/node20_compat.mjs .../conformance/dist/index.js
import fs from 'node:fs';
import {register} from 'node:module';

if (typeof fs.globSync !== 'function') register('./node20_hooks.mjs', import.meta.url);
