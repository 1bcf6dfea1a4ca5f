"""Publishing agendas: documents (Google Docs, OneDrive, local files) and their links in events."""
