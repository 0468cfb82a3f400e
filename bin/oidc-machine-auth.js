#!/usr/bin/env node
// The published CLI: `npx oidc-machine-auth explain|validate|decode …` (see `--help`).
import process from 'node:process';
import { runCli } from '../dist/src/cli/main.js';

process.exitCode = await runCli(process.argv.slice(2));
