/**
 * Light and dark themes: the system's choice by default (CSS `light-dark()` follows
 * `prefers-color-scheme`), or one picked with the header button and remembered.
 */
import { byId } from './dom.js';

const THEMES = ['system', 'light', 'dark'] as const;
type Theme = (typeof THEMES)[number];
const STORAGE_KEY = 'protokv.console.theme';

function stored(): Theme {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return THEMES.includes(value as Theme) ? (value as Theme) : 'system';
  } catch {
    return 'system';
  }
}

function apply(theme: Theme, button: HTMLButtonElement): void {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  button.textContent = `Theme: ${theme}`;
  button.setAttribute('aria-label', `Theme: ${theme}. Switch to ${next}`);
}

/** Applies the remembered theme and wires the button that cycles system → light → dark. */
export function setUpTheme(): void {
  const button = byId<HTMLButtonElement>('theme-toggle');
  let theme = stored();
  apply(theme, button);
  button.addEventListener('click', () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    apply(theme, button);
    try {
      localStorage.setItem(STORAGE_KEY, theme);
    } catch {
      // Not remembered when storage is off; the choice still holds for this visit.
    }
  });
}
