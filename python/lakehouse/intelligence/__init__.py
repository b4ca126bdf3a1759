"""What makes the lakehouse a recruiting tool: hybrid search with playbook memory."""
