// Swagger UI on this server's own description; "Try it out" calls this server. A separate file, not an inline
// script, so a `script-src 'self'` Content-Security-Policy allows it.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
  onComplete: () => { document.body.dataset.ready = 'true'; },
});
