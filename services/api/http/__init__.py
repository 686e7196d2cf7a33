"""The API's HTTP process: JSON API, web pages, auth; calls the service layer."""
