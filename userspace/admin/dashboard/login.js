// The login page: only says when the last attempt failed.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
	if (new URLSearchParams(location.search).has('failed'))
		document.getElementById('login-error').hidden = false;
});
