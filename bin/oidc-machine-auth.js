#!/usr/bin/env node
// The published CLI: `npx oidc-machine-auth explain|validate|decode …` (see `--help`).
import process from 'node:process';
import { runCli } from '../dist/src/cli.js';

process.exitCode = await runCli(process.argv.slice(2));
