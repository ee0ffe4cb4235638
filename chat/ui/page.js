() => {
  // mmchat's page script: the chat's action links, markers from the keyboard, the sketch pad's brush.
  const send = (box, button, value) => {
    const input = document.querySelector(`#${box} textarea, #${box} input`);
    if (!input) { return; }
    input.value = value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    setTimeout(() => document.querySelector(`#${button}`)?.click(), 60);
  };

  // 1. Links in the chat: "#mm-current-img1.v2" makes the version current, "#mm-compare-img1.v2" compares it.
  document.addEventListener('click', (event) => {
    const link = event.target.closest && event.target.closest('a.mm-act');
    if (!link) { return; }
    event.preventDefault();
    event.stopPropagation();
    send('api-act', 'api-act-btn', (link.getAttribute('href') || '').replace(/^#mm-/, ''));
  }, true);

  // 2. The keyboard on the image: arrows move a cursor (Shift: finer), Enter or Space places a marker there.
  const cursor = { x: 0.5, y: 0.5, el: null };
  const picture = () => {
    const img = document.querySelector('#image img');
    if (!img || !img.naturalWidth) { return null; }
    const r = img.getBoundingClientRect();
    const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
    const w = img.naturalWidth * s, h = img.naturalHeight * s;
    return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h };
  };
  const show = () => {
    const box = picture();
    if (!box) { return; }
    if (!cursor.el) {
      cursor.el = document.createElement('div');
      cursor.el.className = 'mm-cursor';
      cursor.el.style.position = 'fixed';
      document.body.appendChild(cursor.el);
    }
    cursor.el.style.left = `${box.left + cursor.x * box.width}px`;
    cursor.el.style.top = `${box.top + cursor.y * box.height}px`;
    cursor.el.style.display = 'block';
  };
  const hide = () => { if (cursor.el) { cursor.el.style.display = 'none'; } };
  document.addEventListener('focusin', (event) => {
    if (event.target.closest && event.target.closest('#image')) { show(); } else { hide(); }
  });
  document.addEventListener('keydown', (event) => {
    if (!(event.target.closest && event.target.closest('#image')) || !picture()) { return; }
    const step = event.shiftKey ? 0.01 : 0.05;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[event.key]) {
      cursor.x = Math.min(0.999, Math.max(0, cursor.x + moves[event.key][0]));
      cursor.y = Math.min(0.999, Math.max(0, cursor.y + moves[event.key][1]));
      event.preventDefault();
      show();
    } else if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      event.stopPropagation();
      send('api-key', 'api-key-btn', `${cursor.x.toFixed(4)},${cursor.y.toFixed(4)}`);
    }
  }, true);
  window.addEventListener('scroll', () => { if (cursor.el && cursor.el.style.display === 'block') { show(); } }, true);
  // A click beside the picture (on the margin around a very wide or tall one) is dropped by Gradio without an
  // event: the server is told, and the status line says where to click.
  document.addEventListener('click', (event) => {
    const img = document.querySelector('#image img');
    const box = picture();
    if (!box || event.target !== img) { return; }
    const inside = event.clientX >= box.left && event.clientX < box.left + box.width
      && event.clientY >= box.top && event.clientY < box.top + box.height;
    if (!inside) { send('api-key', 'api-key-btn', 'outside'); }
  }, true);

  // 3. The sketch pad draws at once: its brush is picked when the pad appears.
  const brush = () => {
    const button = document.querySelector("#sketch button[aria-label='Brush']");
    if (button && !button.classList.contains('selected') && button.getAttribute('aria-pressed') !== 'true'
        && button.offsetParent !== null && !button.dataset.mmPicked) {
      button.dataset.mmPicked = '1';
      button.click();
    }
  };
  document.addEventListener('click', (event) => {
    if (event.target.closest && event.target.closest('#tools button[role="tab"]')) {
      [150, 600, 1500, 3000].forEach((ms) => setTimeout(brush, ms));  // the pad may render late
    }
  });

  // 4. The current version and the active image (their captions start with ★) are framed in their strips.
  const frame = () => {
    const image = document.getElementById('image');  // focusable, so that keys can place markers
    if (image && image.tabIndex < 0) {
      image.tabIndex = 0;
      image.setAttribute('aria-label', 'Image: arrow keys move the cursor, Enter places a marker');
    }
    document.querySelectorAll('#thumbnails .thumbnail-item').forEach((item) => {
      const caption = item.querySelector('.caption-label');
      item.classList.toggle('mm-current', !!caption && caption.textContent.trim().startsWith('★'));
    });
    document.querySelectorAll('#versions .thumbnail-item').forEach((item) => {
      const caption = item.querySelector('.caption-label');
      const current = !!caption && caption.textContent.trim().startsWith('★');
      item.classList.toggle('mm-current', current);
      if (!current || item.dataset.mmShown) { return; }
      item.dataset.mmShown = '1';  // newly current: scroll the strips (not the page) to show it
      const strips = document.getElementById('strips');
      if (!strips || strips.scrollHeight <= strips.clientHeight) { return; }
      const s = strips.getBoundingClientRect(), r = item.getBoundingClientRect();
      if (r.bottom > s.bottom) {
        strips.scrollTop += r.bottom - s.bottom;
      } else if (r.top < s.top) {
        strips.scrollTop -= s.top - r.top;
      }
    });
  };
  new MutationObserver(() => { frame(); brush(); }).observe(document.body, { childList: true, subtree: true, characterData: true });

  // 5. The chat box has the focus when the page opens, unless the person has already put it somewhere (a dropdown
  //    opened before the second try must stay open).
  const focus = () => {
    const free = !document.activeElement || document.activeElement === document.body;
    if (free) { document.querySelector('#chat-input textarea')?.focus(); }
  };
  setTimeout(focus, 300);
  setTimeout(focus, 1500);

  // 6. A file over the server's upload limit is not sent: the page says why in one sentence, in its language.
  const refuse = (files, event) => {
    const max = window.gradio_config && window.gradio_config.max_file_size;
    const big = max && files ? [...files].find((f) => f.size > max) : null;
    if (!big) { return false; }
    event.preventDefault();
    event.stopImmediatePropagation();
    send('api-too-big', 'api-too-big-btn', `${big.size}|${max}|${big.name}`);
    return true;
  };
  document.addEventListener('change', (event) => {
    const input = event.target;
    if (input && input.type === 'file' && refuse(input.files, event)) { input.value = ''; }
  }, true);
  document.addEventListener('drop', (event) => { refuse(event.dataTransfer && event.dataTransfer.files, event); }, true);
}
