/**
 * Where tokenized data is cached: `$LASP_CACHE`, else `$XDG_CACHE_HOME/lasp`, else
 * `~/.cache/lasp`.
 * @module
 */

/** Environment variable naming the cache directory. */
export const CACHE_ENV = "LASP_CACHE";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The cache directory (not created here). */
export function cacheDir(): string {
  const explicit = env(CACHE_ENV);
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/lasp`;
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) {
    throw new Error(
      `Cannot find a cache directory: set $${CACHE_ENV} (or $HOME / $XDG_CACHE_HOME)`,
    );
  }
  return `${home}/.cache/lasp`;
}
