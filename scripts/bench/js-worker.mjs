// The `ts-js` row's worker: ts-celery's compiled CLI (dist/, as the published package runs it)
// on plain node, without tsx. See js-build.ts.
import { main } from '../../dist/cli/main.js';

await main(process.argv.slice(2));
