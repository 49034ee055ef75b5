#!/usr/bin/env node
// Registers tsx so the CLI and the user's TypeScript task modules load without a build step.
await import('tsx');
const { main } = await import('../src/cli/main.ts');
await main(process.argv.slice(2));
