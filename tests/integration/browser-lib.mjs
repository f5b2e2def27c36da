// The /logs dashboard in a real browser, for the suites that drive one: Debian's chromium,
// headless, through puppeteer-core (CI installs both: scripts/deps.sh, tests/package.json).
// browserSkip says why a suite cannot, when either is missing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';
export let puppeteer = null;
export let browserSkip = false;
if (!existsSync(CHROMIUM))
	browserSkip = `${CHROMIUM} is missing (apt-get install chromium)`;
else {
	try {
		puppeteer = (await import('puppeteer-core')).default;
	} catch (e) {
		browserSkip = `puppeteer-core is not installed in tests/node_modules (${e.message})`;
	}
}

/** Headless chromium, its profile in dir/chromium; the caller closes it. */
export function launchBrowser(dir) {
	return puppeteer.launch({ executablePath: CHROMIUM, headless: true,
		userDataDir: join(dir, 'chromium'),
		args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu',
			'--no-first-run', '--disable-dev-shm-usage', '--disable-extensions',
			'--disable-background-networking', '--disable-component-update'] });
}

/**
 * On the dashboard: value typed into the filter input (a selector) and applied; resolves
 * once the calls table has rows and each shows value in its td.column.
 */
export async function filterCalls(page, input, column, value) {
	await page.type(input, value);
	await page.click('#apply-filters');
	await page.waitForFunction((col, v) => {
		const tds = [...document.querySelectorAll(`#calls-table tbody td.${col}`)];
		return tds.length > 0 && tds.every((td) => td.textContent === v);
	}, { timeout: 10000 }, column, value);
}
