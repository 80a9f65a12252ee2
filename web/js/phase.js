/* Where the person is in the flow, and which parts of the page that shows. */

import { show, ui } from './dom.js';
import { canRemove, updatePickSummary } from './photos.js';
import { renderPrivateLink } from './private-link.js';
import { state } from './state.js';

export function setPhase(phase) {
  state.phase = phase;
  const choosing = phase === 'pick' || phase === 'replace';
  show(ui.dropzone, choosing);
  show(ui.guide, choosing); // the selfie guide matters while photos are being chosen, not afterwards
  ui.pickTitle.textContent =
    phase === 'pick' ? '1. Choose your photos' : phase === 'replace' ? '1. Add more photos' : '1. Your photos';
  show(ui.options, phase === 'pick');
  show(ui.replacePanel, phase === 'replace');
  ui.dropzoneLead.textContent =
    phase === 'replace' ? 'Add replacement photos: drag them here, or' : 'Drag 3–10 photos of yourself here, or';
  ui.fileInput.value = '';
  show(ui.jobSection, Boolean(state.job) && phase !== 'deleted');
  show(ui.dangerZone, Boolean(state.job) && phase !== 'deleted' && phase !== 'uploading');
  show(ui.pickSection, phase !== 'deleted');
  show(ui.deletedSection, phase === 'deleted');
  for (const item of state.items) if (item.el) item.el.remove.hidden = !canRemove(item);
  updatePickSummary();
  renderPrivateLink();
}
