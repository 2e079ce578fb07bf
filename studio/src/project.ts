/** One project: its screens (Data, Train, Results, Test, Export) as links, and the panel of the current one. */
import { html } from 'lit';
import { api, type ProjectDetail } from './api.js';
import { LightElement, announce, errorText } from './util.js';
import './data-panel.js';
import './train-panel.js';
import './results-panel.js';
import './test-panel.js';
import './export-panel.js';

const SCREENS = [
  ['data', 'Data'],
  ['train', 'Train'],
  ['results', 'Results'],
  ['test', 'Test'],
  ['export', 'Export'],
] as const;

class StudioProject extends LightElement {
  static override properties = { projectId: {}, screen: {}, project: { state: true } };
  projectId = '';
  screen = 'data';
  project?: ProjectDetail;

  override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('projectId')) {
      this.project = undefined;
      void this.load();
    }
  }

  override updated(changed: Map<string, unknown>): void {
    if (changed.has('screen') && this.project) document.title = `${this.screenTitle()} · headstart studio`;
  }

  private screenTitle() {
    return `${SCREENS.find(([id]) => id === this.screen)?.[1] ?? ''} · ${this.project?.name ?? ''}`;
  }

  /** Reloads the project; panels call it after a change. */
  async load() {
    try {
      this.project = await api.project(this.projectId);
      document.title = `${this.screenTitle()} · headstart studio`;
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  override render() {
    const p = this.project;
    if (!p) return html`<p>Loading…</p>`;
    return html`
      <nav class="crumbs" aria-label="Breadcrumb"><a href="#/">Projects</a> › <span>${p.name}</span></nav>
      <h1>${p.name} <span class="task">${p.task}</span></h1>
      <nav class="screens" aria-label="Project screens">
        ${SCREENS.map(([id, label]) => html`<a href="#/p/${p.id}/${id}" aria-current=${this.screen === id ? 'page' : 'false'}>${label}</a>`)}
      </nav>
      <div @hs-changed=${() => this.load()}>${this.panel(p)}</div>
    `;
  }

  private panel(p: ProjectDetail) {
    switch (this.screen) {
      case 'train':
        return html`<hs-train .project=${p}></hs-train>`;
      case 'results':
        return html`<hs-results .project=${p}></hs-results>`;
      case 'test':
        return html`<hs-test .project=${p}></hs-test>`;
      case 'export':
        return html`<hs-export .project=${p}></hs-export>`;
      default:
        return html`<hs-data .project=${p}></hs-data>`;
    }
  }
}

customElements.define('hs-project', StudioProject);

/** Panels tell the project to reload after they changed something. */
export function changed(element: HTMLElement): void {
  element.dispatchEvent(new CustomEvent('hs-changed', { bubbles: true }));
}
