/**
 * The panel's strings. English (`translations/panel/en.json`) is the source
 * and the fallback: a locale is deep-merged over it, so a missing key shows
 * the English text. Keys are typed from the English file, so a wrong key does
 * not compile.
 */
import en from "../../../translations/panel/en.json" with { type: "json" };

export type TranslationDict = typeof en;

/** Every leaf key of a nested string dictionary, dot-joined. */
type FlattenKeys<T, Prefix extends string = ""> = {
  [K in keyof T & string]: T[K] extends string ? `${Prefix}${K}` : FlattenKeys<T[K], `${Prefix}${K}.`>;
}[keyof T & string];

export type LocalizeKey = FlattenKeys<TranslationDict>;
export type LocalizeParams = Readonly<Record<string, string | number>>;
export type LocalizeFunc = (key: LocalizeKey, params?: LocalizeParams) => string;

/** A partial translation: any subset of the English tree (other shapes are ignored key by key). */
export type PartialDict = Readonly<Record<string, unknown>>;

export const ENGLISH: TranslationDict = en;

/** Locales the panel ships, with their loaders (English is always present). */
export const LOCALES: Readonly<Record<string, () => Promise<PartialDict>>> = {
  en: () => Promise.resolve(en),
};

function lookup(dict: unknown, key: string): string | undefined {
  let node: unknown = dict;
  for (const part of key.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return typeof node === "string" ? node : undefined;
}

/** Replaces `{name}` placeholders; an unknown placeholder stays as written. */
export function format(template: string, params?: LocalizeParams): string {
  if (params === undefined) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = params[name];
    return value === undefined ? whole : String(value);
  });
}

/**
 * A localize function over `dict` with English underneath. A key missing in
 * both returns the key itself, so a gap is visible rather than blank. With a
 * numeric `count`, a `<key>_<plural category>` variant (`_one`, `_few`, …)
 * is used when the locale has one.
 */
export function createLocalize(dict: PartialDict | undefined, locale = "en"): LocalizeFunc {
  const numberFormat = new Intl.NumberFormat(locale);
  const plurals = new Intl.PluralRules(locale);
  const fmt = (value: string | number): string => (typeof value === "number" ? numberFormat.format(value) : value);
  const find = (key: string): string | undefined => (dict === undefined ? undefined : lookup(dict, key)) ?? lookup(en, key);
  return (key, params) => {
    const count = params?.count;
    const plural = typeof count === "number" ? find(`${key}_${plurals.select(count)}`) : undefined;
    const template = plural ?? find(key) ?? key;
    if (params === undefined) return template;
    const formatted: Record<string, string> = {};
    for (const [name, value] of Object.entries(params)) formatted[name] = fmt(value);
    return format(template, formatted);
  };
}

/**
 * Picks the best shipped locale for the user's preferences: an exact match
 * (case-insensitive, `_` read as `-`), then the language part, then English.
 */
export function pickLocale(preferred: readonly string[], available: readonly string[] = Object.keys(LOCALES)): string {
  const norm = (tag: string): string => tag.replace(/_/g, "-").toLowerCase();
  const byNorm = new Map(available.map((tag) => [norm(tag), tag]));
  for (const wanted of preferred) {
    const exact = byNorm.get(norm(wanted));
    if (exact !== undefined) return exact;
  }
  for (const wanted of preferred) {
    const lang = norm(wanted).split("-")[0] ?? "";
    const match = byNorm.get(lang) ?? available.find((tag) => norm(tag).split("-")[0] === lang);
    if (match !== undefined) return match;
  }
  return "en";
}

/** Loads the localize function for the browser's languages. */
export async function loadLocalize(languages: readonly string[]): Promise<{ locale: string; localize: LocalizeFunc }> {
  const locale = pickLocale(languages);
  let dict: PartialDict | undefined;
  try {
    dict = await LOCALES[locale]?.();
  } catch {
    dict = undefined;
  }
  return { locale, localize: createLocalize(dict, locale) };
}
