/**
 * Reads the application-service registration files named in `app_services.config_files`
 * and validates them (src/core/appservice.ts); any problem is one ConfigError naming the file.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import {
  checkRegistrations,
  parseRegistration,
  RegistrationError,
  type AppServiceRegistration,
} from '../core/appservice.js';
import { ConfigError } from './load.js';

export function loadAppServiceRegistrations(files: readonly string[]): AppServiceRegistration[] {
  const entries = files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `app_services: cannot read registration ${file}: ${(err as Error).message}`,
      );
    }
    let raw: unknown;
    try {
      raw = parseYaml(text);
    } catch (err) {
      throw new ConfigError(
        `app_services: ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
      );
    }
    try {
      return { file, registration: parseRegistration(raw, file) };
    } catch (err) {
      if (err instanceof RegistrationError) throw new ConfigError(`app_services: ${err.message}`);
      throw err;
    }
  });
  try {
    checkRegistrations(entries);
  } catch (err) {
    if (err instanceof RegistrationError) throw new ConfigError(`app_services: ${err.message}`);
    throw err;
  }
  return entries.map((e) => e.registration);
}
