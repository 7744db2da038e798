#!/usr/bin/env node
'use strict';
// Thin shim: the CLI lives in the compiled library so that it is typed and testable.
require('../dist/lib/cli/main.js')
  .main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(`tfos: ${err && err.message ? err.message : err}`);
      process.exitCode = 1;
    },
  );
