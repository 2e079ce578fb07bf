/**
 * headstart studio: the page. <hs-app> routes by the URL hash (#/ for projects, #/p/<id>/<screen>)
 * and holds the live region every panel announces through.
 */
import { html, nothing } from 'lit';
import { api, type ProjectSummary, type Task } from './api.js';
import { LightElement, announce, errorText } from './util.js';
import './project.js';

class StudioApp extends LightElement {
  static override properties = { route: { state: true }, message: { state: true } };
  route = location.hash;
  message?: { message: string; level: 'info' | 'error' };
  private readonly onHash = () => {
    this.route = location.hash;
  };
  private readonly onAnnounce = (event: Event) => {
    this.message = (event as CustomEvent).detail;
  };

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener('hashchange', this.onHash);
    window.addEventListener('hs-announce', this.onAnnounce);
  }

  override disconnectedCallback(): void {
    window.removeEventListener('hashchange', this.onHash);
    window.removeEventListener('hs-announce', this.onAnnounce);
    super.disconnectedCallback();
  }

  override render() {
    const match = /^#\/p\/([a-z0-9-]+)(?:\/(\w+))?/.exec(this.route);
    return html`
      <header class="top">
        <a class="brand" href="#/">headstart <span>studio</span></a>
        <p class="tagline">Collect, label, train, test and export, on this computer.</p>
      </header>
      <div class="status ${this.message?.level ?? ''}" role="status" aria-live="polite">${this.message?.message ?? ''}</div>
      <main id="main" tabindex="-1">
        ${match ? html`<hs-project .projectId=${match[1]!} .screen=${match[2] ?? 'data'}></hs-project>` : html`<hs-home></hs-home>`}
      </main>
    `;
  }
}

class StudioHome extends LightElement {
  static override properties = { projects: { state: true }, busy: { state: true } };
  projects?: ProjectSummary[];
  busy = false;

  override connectedCallback(): void {
    super.connectedCallback();
    document.title = 'headstart studio';
    void this.load();
  }

  private async load() {
    try {
      this.projects = (await api.projects()).projects;
    } catch (error) {
      announce(errorText(error), 'error');
    }
  }

  private async create(event: SubmitEvent) {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    this.busy = true;
    try {
      const { id } = await api.createProject(String(data.get('name') ?? ''), String(data.get('task')) as Task);
      announce(`Project created.`);
      location.hash = `#/p/${id}/data`;
    } catch (error) {
      announce(errorText(error), 'error');
    } finally {
      this.busy = false;
    }
  }

  override render() {
    return html`
      <h1>Projects</h1>
      <section class="panel" aria-labelledby="new-project">
        <h2 id="new-project">New project</h2>
        <form class="row" @submit=${this.create}>
          <label>Name <input name="name" required maxlength="100" placeholder="e.g. Ants and bees" autocomplete="off"></label>
          <label>Kind
            <select name="task">
              <option value="image">Images (photos, webcam)</option>
              <option value="audio">Sounds (microphone, WAV)</option>
              <option value="text">Text (lines, CSV)</option>
            </select>
          </label>
          <button class="primary" ?disabled=${this.busy}>Create project</button>
        </form>
      </section>
      <section aria-labelledby="your-projects">
        <h2 id="your-projects">Your projects</h2>
        ${this.projects === undefined
          ? html`<p>Loading…</p>`
          : this.projects.length === 0
            ? html`<p class="hint">No projects yet. Each project is a folder of examples that <code>headstart train</code> can also read.</p>`
            : html`<ul class="cards">
                ${this.projects.map(
                  (p) => html`<li class="card">
                    <h3><a href="#/p/${p.id}/data">${p.name}</a></h3>
                    <p>${p.task} · ${p.classes.length} classes · ${p.classes.reduce((n, c) => n + c.examples, 0)} examples</p>
                  </li>`,
                )}
              </ul>`}
      </section>
      ${nothing}
    `;
  }
}

customElements.define('hs-home', StudioHome);
customElements.define('hs-app', StudioApp);
