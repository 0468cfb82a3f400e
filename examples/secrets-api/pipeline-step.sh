# The inline script of examples/secrets-api/README.md's AzureCLI@2 step, verbatim. The walkthrough (npm start) runs this
# file against the demo with APP_URL, IDENTITY_ID and WORKSPACE_SLUG set and a stand-in `az` on PATH.
set -euo pipefail

ACCESS_TOKEN=$(az account get-access-token --resource api://AzureADTokenExchange --query accessToken -o tsv)

APP_TOKEN=$(curl -s -X POST "$APP_URL/api/v1/auth/oidc-auth/login" \
  -H 'Content-Type: application/x-www-form-urlencoded' \
  --data-urlencode "identityId=$IDENTITY_ID" \
  --data-urlencode "jwt=$ACCESS_TOKEN" | jq -r .accessToken)

DATABASE_URL=$(curl -s -H "Authorization: Bearer $APP_TOKEN" \
  "$APP_URL/api/v3/secrets/raw?environment=prod&workspaceSlug=$WORKSPACE_SLUG" \
  | jq -er '.secrets[] | select(.secretKey == "DATABASE_URL") | .secretValue')

echo "##vso[task.setvariable variable=DATABASE_URL;issecret=true]$DATABASE_URL"
