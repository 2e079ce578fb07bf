import { resolve } from 'node:path';
import { Command } from 'commander';
import { createStudioServer } from '../studio/server.js';
import { cacheDirOf, hubOptionsOf, integer, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface StudioCommandOptions extends GlobalOptions, HubCliOptions {
  port: number;
  host: string;
  open?: boolean;
  backbone: string[];
}

export function studioCommand(): Command {
  return withHubOptions(new Command('studio'))
    .description('collect, label, train, test and export in a local web page (projects are folders `headstart train` reads)')
    .argument('[dir]', 'where projects live, one folder each', 'headstart-projects')
    .option('-p, --port <port>', 'TCP port (0: any free one)', integer('--port'), 7860)
    .option('--host <host>', 'interface to listen on; anything but loopback exposes your projects to the network', '127.0.0.1')
    .option('--open', 'open the page in the default browser')
    .option('-b, --backbone <ref>', 'also offer this backbone (a folder, .onnx file, tfjs: or hf: reference); repeatable', (value: string, all: string[]) => [...all, value], [] as string[])
    .option('--cache-dir <dir>', 'where features and converted models are cached (default ~/.cache/headstart)')
    .action(async (dir: string, options: StudioCommandOptions) => {
      // Local references are made absolute, so they mean the same whatever the server's working directory.
      const backbones = options.backbone.map((ref) => (/^(builtin|hf|tfjs|https?):/.test(ref) || ref === 'tfidf' ? ref : resolve(ref)));
      const studio = await createStudioServer({ dir: resolve(dir), cacheDir: cacheDirOf(options), backbones, hub: hubOptionsOf(options), logger: { level: 'warn' } });
      const address = await studio.listen(options.port, options.host);
      process.stderr.write(`headstart studio: ${address}  (projects in ${resolve(dir)}; Ctrl+C to stop)\n`);
      if (options.open) await openBrowser(address);
      await new Promise<void>((done) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.stderr.write('stopping…\n');
          studio.close().then(done, done);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}

/** The platform's own opener; failing to open is not an error (the address is printed). */
async function openBrowser(url: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  spawn(command, args as string[], { stdio: 'ignore', detached: true }).on('error', () => {}).unref();
}
