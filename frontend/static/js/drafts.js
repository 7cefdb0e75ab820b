// Unsaved answers kept in this browser (localStorage) so that a failed save, a reload or a
// new sign-in loses nothing. They are kept under the signed-in reader's own prefix, so that on
// a shared reading-room computer the next account never reads them: signing out removes every
// draft kept here, and a page opened by another account removes the drafts of the one before.
window.readerDrafts = (function () {
  "use strict";
  const PREFIX = "readerstudy-draft:";
  const user = document.body.dataset.user || "";
  const own = PREFIX + user + ":";

  function draftKeys(keep) {
    const found = [];
    try {
      for (let index = 0; index < localStorage.length; index += 1) {
        const key = localStorage.key(index);
        if (key && key.startsWith(PREFIX) && keep(key)) { found.push(key); }
      }
    } catch (e) { /* storage off: nothing was kept */ }
    return found;
  }
  function forget(keys) {
    keys.forEach(function (key) { try { localStorage.removeItem(key); } catch (e) { /* gone */ } });
  }

  if (user) { forget(draftKeys(function (key) { return !key.startsWith(own); })); }
  const signOut = document.querySelector("form.logout");
  if (signOut) {
    signOut.addEventListener("submit", function () { forget(draftKeys(function () { return true; })); });
  }

  return {
    keep: function (publicId, answers) {
      try { localStorage.setItem(own + publicId, JSON.stringify(answers)); } catch (e) { /* storage off: the tab still holds them */ }
    },
    take: function (publicId) {
      try { return JSON.parse(localStorage.getItem(own + publicId) || "{}"); } catch (e) { return {}; }
    },
    drop: function (publicId) {
      try { localStorage.removeItem(own + publicId); } catch (e) { /* nothing kept */ }
    },
  };
})();
