/**
 * Light or dark, and Home Assistant's theme colours when the panel runs in
 * HA's ingress iframe.
 *
 * CSS variables do not cross the iframe boundary, so the panel carries a
 * default palette (panel/index.html) and, when the parent page is reachable
 * (ingress is same-origin), copies HA's theme variables from it and follows
 * their changes. `?theme=dark|light` overrides everything; otherwise the
 * parent's background decides, then `prefers-color-scheme`.
 */

export type ThemeMode = "light" | "dark";

/** HA theme variables copied from the parent page when present. */
export const HA_THEME_VARIABLES: readonly string[] = [
  "--primary-color",
  "--accent-color",
  "--dark-primary-color",
  "--light-primary-color",
  "--text-primary-color",
  "--primary-text-color",
  "--secondary-text-color",
  "--disabled-text-color",
  "--primary-background-color",
  "--secondary-background-color",
  "--card-background-color",
  "--divider-color",
  "--error-color",
  "--warning-color",
  "--success-color",
  "--info-color",
  "--rgb-primary-color",
  "--ha-card-background",
  "--ha-card-border-radius",
  "--ha-card-border-color",
  "--ha-card-border-width",
  "--ha-card-box-shadow",
  "--app-header-background-color",
  "--app-header-text-color",
  "--app-header-border-bottom",
  "--paper-font-body1_-_font-family",
  "--ha-font-family-body",
  "--ha-font-family-code",
  "--code-font-family",
];

/** `?theme=dark` / `?theme=light`, else null. */
export function themeFromQuery(search: string): ThemeMode | null {
  const value = new URLSearchParams(search).get("theme")?.toLowerCase();
  return value === "dark" || value === "light" ? value : null;
}

/** Parses `#rgb`, `#rrggbb`, `rgb()`/`rgba()` into 0-255 channels; null for anything else. */
export function parseColor(css: string): [number, number, number] | null {
  const value = css.trim().toLowerCase();
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/.exec(value);
  if (hex !== null) {
    const digits = hex[1] ?? "";
    const full = digits.length === 3 ? digits.replace(/./g, "$&$&") : digits;
    return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as [number, number, number];
  }
  const rgb = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(value);
  if (rgb !== null) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  return null;
}

/** True for a dark colour (relative luminance below 0.4), null when it cannot be read. */
export function isDarkColor(css: string): boolean | null {
  const rgb = parseColor(css);
  if (rgb === null) return null;
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.4;
}

/** The mode to use: the query wins, then the parent's theme, then the OS preference. */
export function pickTheme(query: ThemeMode | null, parentDark: boolean | null, prefersDark: boolean): ThemeMode {
  if (query !== null) return query;
  if (parentDark !== null) return parentDark ? "dark" : "light";
  return prefersDark ? "dark" : "light";
}

interface ParentTheme {
  variables: Record<string, string>;
  dark: boolean | null;
}

/** Reads HA's theme from the parent page; null when there is none or it is not reachable. */
export function readParentTheme(win: Window): ParentTheme | null {
  try {
    if (win.parent === win) return null;
    const root = win.parent.document.documentElement;
    const style = win.parent.getComputedStyle(root);
    const variables: Record<string, string> = {};
    for (const name of HA_THEME_VARIABLES) {
      const value = style.getPropertyValue(name).trim();
      if (value !== "") variables[name] = value;
    }
    if (Object.keys(variables).length === 0) return null;
    const background = variables["--primary-background-color"] ?? variables["--card-background-color"];
    return { variables, dark: background === undefined ? null : isDarkColor(background) };
  } catch {
    // Not same-origin (or no parent document): keep our own palette.
    return null;
  }
}

/**
 * Applies the theme to `document` now and whenever it changes; returns a
 * function that stops following changes.
 */
export function startTheme(win: Window = window): () => void {
  const doc = win.document;
  const query = themeFromQuery(win.location.search);
  const media = win.matchMedia("(prefers-color-scheme: dark)");
  let applied: string[] = [];

  const apply = (): void => {
    const parent = query === null ? readParentTheme(win) : null;
    for (const name of applied) doc.documentElement.style.removeProperty(name);
    applied = [];
    if (parent !== null) {
      for (const [name, value] of Object.entries(parent.variables)) {
        doc.documentElement.style.setProperty(name, value);
        applied.push(name);
      }
    }
    const mode = pickTheme(query, parent?.dark ?? null, media.matches);
    doc.documentElement.dataset.theme = mode;
    doc.documentElement.style.colorScheme = mode;
  };

  apply();
  const onMedia = (): void => {
    apply();
  };
  media.addEventListener("change", onMedia);
  let observer: MutationObserver | null = null;
  if (query === null) {
    try {
      if (win.parent !== win) {
        const parentDoc = win.parent.document;
        observer = new MutationObserver(() => {
          apply();
        });
        // HA applies themes as inline styles on <html> (and toggles classes/attributes for dark mode).
        observer.observe(parentDoc.documentElement, { attributes: true, attributeFilter: ["style", "class"] });
      }
    } catch {
      observer = null;
    }
  }
  return () => {
    media.removeEventListener("change", onMedia);
    observer?.disconnect();
  };
}
