"""The only modules that import boto3. Clients are created lazily on first use or injected."""
