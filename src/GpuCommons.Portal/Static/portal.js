// Live log tail of the job page: polls the server for new output (no framework, no external file).
(function () {
  var pre = document.getElementById('log');
  if (!pre) return;
  var url = pre.getAttribute('data-url');
  var offset = parseInt(pre.getAttribute('data-offset') || '0', 10);
  var state = pre.getAttribute('data-state');
  function tick() {
    fetch(url + '&offset=' + offset, { credentials: 'same-origin' }).then(function (r) {
      var next = parseInt(r.headers.get('X-Log-Offset') || String(offset), 10);
      var st = r.headers.get('X-Job-State');
      return r.text().then(function (t) {
        if (t.length > 0) {
          var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent += t;
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
        offset = next;
        if (st && st !== state) { location.reload(); return; }
        if (st === 'pending' || st === 'running') setTimeout(tick, 1000);
      });
    }).catch(function () { setTimeout(tick, 3000); });
  }
  if (state === 'pending' || state === 'running') setTimeout(tick, 1000);
})();
