"""Server-rendered web pages of the API service: the public lead form, the creator's and
the admin's pages (docs/WEB.md). They call the same service layer as the JSON API."""
