// usersync console: drag and drop in the rules' Re-order column. Pointer events (mouse, pen, touch):
// press a row's handle, move it over the other rows, release; the new order is posted with the page's
// reorder form (htmx swaps the table in). Without this script the Move up / Move down buttons do the same.
"use strict";

(function () {
  let dragged = null;
  let before = null;

  function rowsOf(body) {
    return Array.from(body.querySelectorAll("tr[data-rule]"));
  }

  function orderOf(body) {
    return rowsOf(body).map((row) => row.dataset.rule).join(",");
  }

  function submitOrder(body, moved) {
    const form = document.getElementById("reorder-form");
    if (!form) return;
    form.querySelectorAll('input[name="order"]').forEach((input) => input.remove());
    rowsOf(body).forEach((row) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "order";
      input.value = row.dataset.rule;
      form.appendChild(input);
    });
    form.querySelector('input[name="moved"]').value = moved;
    form.requestSubmit();
  }

  document.addEventListener("pointerdown", (event) => {
    const handle = event.target.closest(".handle");
    if (!handle || event.button !== 0) return;
    const row = handle.closest("tr[data-rule]");
    if (!row) return;
    event.preventDefault();
    dragged = row;
    before = orderOf(row.parentElement);
    row.classList.add("dragging");
  });

  document.addEventListener("pointermove", (event) => {
    if (!dragged) return;
    const body = dragged.parentElement;
    const over = rowsOf(body).find((row) => {
      const box = row.getBoundingClientRect();
      return row !== dragged && event.clientY >= box.top && event.clientY <= box.bottom;
    });
    if (!over) return;
    const box = over.getBoundingClientRect();
    if (event.clientY < box.top + box.height / 2) {
      body.insertBefore(dragged, over);
    } else {
      body.insertBefore(dragged, over.nextSibling);
    }
  });

  function drop() {
    if (!dragged) return;
    const row = dragged;
    const body = row.parentElement;
    dragged = null;
    row.classList.remove("dragging");
    if (orderOf(body) !== before) submitOrder(body, row.dataset.rule);
  }

  document.addEventListener("pointerup", drop);
  document.addEventListener("pointercancel", drop);
})();
